"""params.yaml parsing: every invalid value fails before compute with an error naming the key."""

import copy
import dataclasses
from pathlib import Path

import pytest
import yaml

from elt.config import ConfigError, config_hash, load_params, parse_params, point_name

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = yaml.safe_load((ROOT / "params.yaml").read_text())


def _with(path: str, value):
    raw = copy.deepcopy(DEFAULT)
    node = raw
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = value
    return raw


def test_default_and_paper_params_parse():
    p = load_params(ROOT / "params.yaml")
    assert {g.kind for g in p.grid.values()} == {"elt", "vanilla", "unique"}
    assert p.loops_for("tiny-6x1-unique") == (1,)
    assert p.loops_for("tiny-2x3-elt") == tuple(DEFAULT["sample"]["loops"])
    paper = parse_params(yaml.safe_load((ROOT / "params-imagenet256.yaml").read_text()))
    assert paper.grid["L-8x3-elt"].N == 8 and paper.grid["L-8x3-elt"].L_max == 3
    # Paper Appendix A: weight decay x5 for scales >= H, applied through the scale's overrides.
    assert paper.scales["H"].overrides["weight_decay"] == pytest.approx(5 * paper.train.weight_decay)


@pytest.mark.parametrize(
    "path, value, key",
    [
        ("grid.tiny-2x3-elt.N", 0, "grid.tiny-2x3-elt.N"),
        ("grid.tiny-2x3-elt.L_max", 1, "grid.tiny-2x3-elt.L_max"),  # ILSD needs L_min < L_max
        ("grid.tiny-2x3-elt.scale", "huge", "grid.tiny-2x3-elt.scale"),
        ("scales.tiny.num_heads", 3, "scales.tiny.num_heads"),
        ("sample.loops", [], "sample.loops"),
        ("sample.loops", [1, 0], "sample.loops[1]"),
        ("train.family", "maskgit", "train.family"),  # moved to grid.<run>.family
        ("train.label_smoothing", 0.1, "train.label_smoothing"),  # moved to families.maskgit.train
        ("sample.steps", 8, "sample.steps"),  # moved to families.maskgit.sample
        ("grid.tiny-2x3-elt.family", "gan", "grid.tiny-2x3-elt.family"),
        ("families.maskgit.sample.steps", 0, "families.maskgit.sample.steps"),
        ("families.maskgit.sample.temperature_bias", 0.0, "families.maskgit.sample.temperature_bias"),
        ("families.maskgit.train.label_smoothing", 1.0, "families.maskgit.train.label_smoothing"),
        ("families.maskgit.train.lr", 0.1, "families.maskgit.train.lr"),
        ("families.gan", {}, "families.gan"),
        ("train.decay", "linear", "train.decay"),
        ("train.label_drop", 1.0, "train.label_drop"),
        ("sample.cfg_scale", 2.0, "sample.cfg_scale"),  # moved to sample.cfg_scales
        ("sample.cfg_scales", [1.0, -1.0], "sample.cfg_scales[1]"),
        ("sample.cfg_scales", [], "sample.cfg_scales"),
        ("sample.cfg_scales", [1.0, 1], "sample.cfg_scales"),  # duplicates
        ("sample.cfg_scales", 2.0, "sample.cfg_scales"),  # a list, not a number
        ("train.steps", "many", "train.steps"),
        ("train.lr", "fast", "train.lr"),
        ("families.maskgit.tokenizer.kind", "magic", "families.maskgit.tokenizer.kind"),
        ("families.maskgit.tokenizer.kind", "vae", "families.maskgit.tokenizer.kind"),  # not the family's kind
        ("families.maskgit.tokenizer.downsample", 5, "families.maskgit.tokenizer.downsample"),
        # once failed 8 s into training
        ("families.maskgit.tokenizer.codebook_size", 1, "families.maskgit.tokenizer.codebook_size"),
        # the data's, not the tokenizer's
        ("families.maskgit.tokenizer.image_size", 64, "families.maskgit.tokenizer.image_size"),
        ("eval.ref_num_images", 1, "eval.ref_num_images"),
    ],
)
def test_bad_values_name_their_key(path, value, key):
    with pytest.raises(ConfigError) as e:
        parse_params(_with(path, value))
    assert e.value.key == key
    assert str(e.value).startswith(key)


def test_moved_keys_say_where_they_went():
    with pytest.raises(ConfigError, match="moved to families.maskgit.sample.steps"):
        parse_params(_with("sample.steps", 8))


def test_cfg_sweep_points_every_L_at_every_scale_and_unique_runs_at_L1():
    p = parse_params(_with("sample.cfg_scales", [1.0, 2]))
    assert p.sample_points("tiny-2x3-elt") == [(L, s) for L in p.sample.loops for s in (1.0, 2.0)]
    assert p.sample_points("tiny-6x1-unique") == [(1, 1.0), (1, 2.0)]
    assert [point_name(L, s) for L, s in p.sample_points("tiny-6x1-unique")] == ["L1", "L1-cfg2"]


def test_a_grid_point_without_family_is_maskgit_and_families_get_their_typed_settings():
    raw = copy.deepcopy(DEFAULT)
    del raw["grid"]["tiny-2x3-elt"]["family"]
    raw["families"]["maskgit"]["sample"]["steps"] = 12
    p = parse_params(raw)
    assert p.grid["tiny-2x3-elt"].family == "maskgit"
    fam = p.family("tiny-2x3-elt")
    assert fam.sample.steps == 12 and fam.quality_metric == "fid" and fam.modality == "image"
    assert type(fam.sample).__module__ == "elt.families.maskgit.config"
    assert p.quality_metrics() == ["fid"]
    # a family's settings are part of its runs' identity (train resume key)
    raw["families"]["maskgit"]["train"] = {"label_smoothing": 0.2}
    assert parse_params(raw).run_config("tiny-2x3-elt")["family"] == {"label_smoothing": 0.2}


def test_unknown_keys_and_bad_run_names():
    raw = _with("train.learning_rate", 0.1)
    with pytest.raises(ConfigError, match=r"^train\.learning_rate: unknown key"):
        parse_params(raw)
    raw = copy.deepcopy(DEFAULT)
    raw["grid"]["bad.name"] = {"family": "maskgit", "scale": "tiny", "N": 1, "L_max": 2, "ilsd": True}
    with pytest.raises(ConfigError, match=r"^grid\.bad\.name:"):
        parse_params(raw)


def test_unknown_dataset_fails_naming_the_key(tmp_path):
    raw = _with("data.dataset", "no_such_dataset_xyz")
    f = tmp_path / "params.yaml"
    f.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"^data\.dataset: unknown dataset 'no_such_dataset_xyz'"):
        load_params(f)
    raw = _with("data.dataset", str(tmp_path / "missing_folder/"))
    f.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"^data\.dataset:.*not a folder"):
        load_params(f)


def test_scale_overrides_reach_only_that_scale():
    raw = copy.deepcopy(DEFAULT)
    raw["scales"]["tiny"]["overrides"] = {"lr": 0.5}
    raw["grid"]["small-2x2-elt"] = {"family": "maskgit", "scale": "small", "N": 2, "L_max": 2, "ilsd": True}
    p = parse_params(raw)
    assert p.train_hyper("tiny-2x3-elt").lr == 0.5
    assert p.train_hyper("small-2x2-elt").lr == DEFAULT["train"]["lr"]


def test_config_hash_is_stable_and_sensitive():
    p = parse_params(DEFAULT)
    a = config_hash(p.run_config("tiny-2x3-elt"))
    assert a == config_hash(parse_params(copy.deepcopy(DEFAULT)).run_config("tiny-2x3-elt"))
    assert a != config_hash(parse_params(_with("train.steps", 7)).run_config("tiny-2x3-elt"))


def test_unknown_run_name_is_named():
    p = parse_params(copy.deepcopy(DEFAULT))
    assert p.point("tiny-2x3-elt").N == 2
    with pytest.raises(ConfigError, match=r"^--run: 'nope' is not a key of `grid`"):
        p.point("nope")


def test_each_family_has_its_own_tokenizer_section():
    """dvc.yaml makes train_tokenizer@F / tokenize@F from the sections of `families`: a grid family
    without one, a section no grid point uses, and the old top-level `tokenizer` fail by key."""
    raw = copy.deepcopy(DEFAULT)
    raw["tokenizer"] = raw["families"]["maskgit"].pop("tokenizer")
    with pytest.raises(ConfigError, match=r"^tokenizer: moved to families\.<family>\.tokenizer"):
        parse_params(raw)
    raw = copy.deepcopy(DEFAULT)
    del raw["families"]["maskgit"]
    with pytest.raises(ConfigError) as e:
        parse_params(raw)
    assert e.value.key.endswith(".family") and "families.maskgit" in str(e.value)
    raw = copy.deepcopy(DEFAULT)
    raw["families"]["dit"] = {"tokenizer": {"kind": "vae"}}
    with pytest.raises(ConfigError, match=r"^families\.dit\.train: missing: DVC tracks this section.*`train: \{\}`"):
        parse_params(raw)  # DVC would refuse the family's train stages for want of the param
    raw["families"]["dit"].update(train={}, sample={})
    with pytest.raises(ConfigError) as e:
        parse_params(raw)
    assert e.value.key == "families.dit" and "train_tokenizer@dit" in str(e.value)
    # two families side by side: each gets its own kind of tokenizer, and the stages find theirs
    raw["grid"]["dit-1x2"] = {"family": "dit", "scale": "tiny", "N": 1, "L_max": 2, "ilsd": True}
    params = parse_params(raw)
    assert params.families["maskgit"].tokenizer.kind == "vq" and params.families["dit"].tokenizer.kind == "vae"
    assert params.grid_family("dit").name == "dit"
    with pytest.raises(ConfigError, match="--family"):
        params.grid_family(None)  # two families: the stage must be told which
    assert params.run_config("dit-1x2")["tokenizer"]["kind"] == "vae"


def test_a_family_without_guidance_trains_without_label_drop():
    """Labels are dropped only to learn the null class CFG samples with: the video family (no
    guidance, paper Table 5: no label drop) gets 0 whatever train.label_drop says."""
    raw = copy.deepcopy(DEFAULT)
    params = parse_params(raw)
    run = next(iter(params.grid))
    assert params.families["maskgit"].guidance and params.train_hyper(run).label_drop == raw["train"]["label_drop"] > 0
    assert not params.families["magvit"].guidance
    magvit = dataclasses.replace(params, grid={run: dataclasses.replace(params.grid[run], family="magvit")})
    assert magvit.train_hyper(run).label_drop == 0.0


def test_a_familys_cross_section_check_runs_when_params_are_parsed():
    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "params-dit-digits.yaml").read_text())
    raw["families"]["dit"]["sample"]["lambda_min"] = -20.0  # below the trained -15: never seen in training
    with pytest.raises(ConfigError) as e:
        parse_params(raw)
    assert e.value.key == "families.dit.sample.lambda_min" and "trained range [-15, 15]" in str(e.value)
