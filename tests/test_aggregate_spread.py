"""Spreads in the aggregate: the noise rule, pair-mean spreads, the floor, and their outputs.

Hand-made grid (scale "tiny"; every std 1 unless said):

  run   kind     N L_max | L: (GFLOPs, FID ± std)
  e     elt      2 3     | 1:(1, 30) 2:(2, 20) 3:(3, 15)
  v     vanilla  2 3     | 1:(1, 35) 2:(2, 16) 3:(3, 16)
  u4    unique   4 1     | 1:(2, 19 ± unknown: written without any spread key)
  u6    unique   6 1     | 1:(3, 14.5)

ILSD - vanilla gaps (v - e), spread sqrt(1 + 1) = 1.414, real when |gap| > 2.828:
  L1 +5 -> ILSD better; L2 -4 -> vanilla better; L3 +1 -> within noise.
  Mean over L < 3: (5 - 4) / 2 = 0.5, spread sqrt(4 * 1) / 2 = 1 -> within noise.
Looped vs unique: e L2 vs u4: 20 - 19 = +1, spread unknown; e L3 vs u6: 15 - 14.5 = +0.5,
  spread 1.414 -> within noise. Mean: unknown (u4 has no std).
Front (ELT + unique): (1, 30) e L1, (2, 19) u4, (3, 14.5) u6; best = u6, 14.5 ± 1.
Floor: real 10 ± 0.5, reconstruction 12 ± 0.4. Best - reconstruction = 2.5 ± sqrt(1 + 0.16)
  = 1.077, real (2.5 > 2.154): "2.50 ± 1.08 above"; best - real = 4.5 ± 1.118: "above".
"""

import csv
import json
import math
from pathlib import Path

import pytest
import yaml
from matplotlib.container import ErrorbarContainer

from elt.aggregate import EvalFileError, FloorFileError, build_report, write_report
from elt.aggregate.collect import Point, RunEval
from elt.aggregate.compare import (SPREAD_UNKNOWN, WITHIN_NOISE, Difference, Estimate,
                                   combine, looped_vs_unique, mean_gap_over_pairs,
                                   mean_looped_minus_unique)

RUNS = {
    "e": dict(kind="elt", N=2, L_max=3, ilsd=True, loops={1: (1, 30), 2: (2, 20), 3: (3, 15)}),
    "v": dict(kind="vanilla", N=2, L_max=3, ilsd=False,
              loops={1: (1, 35), 2: (2, 16), 3: (3, 16)}),
    "u4": dict(kind="unique", N=4, L_max=1, ilsd=False, loops={1: (2, 19)}, std=None),
    "u6": dict(kind="unique", N=6, L_max=1, ilsd=False, loops={1: (3, 14.5)}),
}
ROOT = Path(__file__).resolve().parents[1]
GRID = {n: {"scale": "tiny", "N": r["N"], "L_max": r["L_max"], "ilsd": r["ilsd"]}
        for n, r in RUNS.items()}
FLOOR = {"dataset": "digits", "split": "train[1497:]", "num_samples": 100, "draws": 3,
         "metrics": {"fid": {"real": {"mean": 10.0, "std": 0.5, "values": [9.5, 10.0, 10.5],
                                      "draw_std": 0.7},
                             "reconstruction": {"mean": 12.0, "std": 0.4,
                                                "values": [11.6, 12.0, 12.4],
                                                "draw_std": 0.6}}}}


def _entry(g, f, std):
    entry = {"fid": f, "gflops": g, "samples_per_second": 10.0, "is": None}
    if std is not None:  # the new keys; u4 is an eval.json written before they existed
        entry.update(fid_std=std, fid_lo=f - 1.9, fid_hi=f + 2.1, kid=0.0123456789,
                     kid_std=0.00098765, is_std=None, cfg_scale=1.5, num_samples=100,
                     by_cfg={"1": {"fid": f + 3}, "1.5": {"fid": f}})
    return entry


@pytest.fixture()
def runs_dir(tmp_path):
    for name, r in RUNS.items():
        (tmp_path / "runs" / name).mkdir(parents=True)
        (tmp_path / "runs" / name / "eval.json").write_text(json.dumps({
            "run": name, "family": "maskgit", "scale": "tiny", "N": r["N"], "L_max": r["L_max"],
            "ilsd": r["ilsd"], "kind": r["kind"], "params": 100 * r["N"],
            "sampling_steps": 8, "cfg_scales": [1.0, 1.5],
            "per_loop": {str(L): _entry(g, f, r.get("std", 1.0))
                         for L, (g, f) in r["loops"].items()}}))
    (tmp_path / "floor.json").write_text(json.dumps(FLOOR))
    return tmp_path / "runs"


# ------------------------------------------------------------------------------ the rule
def test_verdict_rule_on_hand_numbers():
    a, b = Estimate(("a", 1), 15.0, 1.0), Estimate(("b", 1), 10.0, 1.0)
    d = combine([(1.0, a), (-1.0, b)])
    assert d.value == 5.0 and d.spread == pytest.approx(math.sqrt(2))
    assert d.verdict("b better", "a better") == "b better"  # 5 > 2 * 1.414
    assert combine([(1.0, b), (-1.0, a)]).verdict("b better", "a better") == "a better"
    assert Difference(2.0, math.sqrt(2)).verdict("x", "y") == WITHIN_NOISE  # 2 < 2.83
    assert Difference(-2.0, math.sqrt(2)).verdict("x", "y") == WITHIN_NOISE
    # Z is 2: just above / just below 2 * sqrt(2) = 2.828 (1.96 would call 2.8 real).
    assert Difference(2.9, math.sqrt(2)).verdict("x", "y") == "x"
    assert Difference(2.8, math.sqrt(2)).verdict("x", "y") == WITHIN_NOISE
    # Stds add in quadrature: sqrt(3^2 + 4^2) = 5, not 3 + 4.
    assert combine([(1.0, Estimate(("p", 1), 20.0, 3.0)),
                    (-1.0, Estimate(("q", 1), 9.0, 4.0))]).spread == pytest.approx(5.0)
    # A missing std is unknown, never 0: no claim even for a huge difference.
    unknown = combine([(1.0, a), (-1.0, Estimate(("c", 1), 100.0, None))])
    assert unknown.spread is None and unknown.real is None
    assert unknown.verdict("x", "y") == SPREAD_UNKNOWN


def test_pair_mean_spreads_by_hand(runs_dir):
    rep = build_report(GRID, runs_dir)
    fid = rep.group("fid")
    (pair,) = fid.pairs
    # Over L < 3: gaps +5 (stds 1, 1) and -4 (stds 1, 1): sqrt(1 + 1 + 1 + 1) / 2 = 1.
    assert pair.mean_gap.value == pytest.approx(0.5)
    assert pair.mean_gap.spread == pytest.approx(1.0)
    assert mean_gap_over_pairs(fid.pairs).spread == pytest.approx(1.0)
    # A pair whose unique run has no std makes the looped-vs-unique mean unknown.
    assert mean_looped_minus_unique(fid.vs_unique).spread is None
    only_u6 = [c for c in fid.vs_unique if c.unique_run == "u6"]
    assert mean_looped_minus_unique(only_u6).spread == pytest.approx(math.sqrt(2))

    # One unique baseline shared by two pairs (stds: ELT x 1, ELT y 2, unique u 3):
    # mean = (x + y) / 2 - u, var = 1/4 + 4/4 + 9 -> sqrt(10.25); treating the two differences
    # as independent would give sqrt(10 + 13) / 2 = 2.40 instead of 3.20.
    runs = [_run("x", "elt", 2, 3, L=3, fid=25.0, std=1.0),
            _run("y", "elt", 3, 2, L=2, fid=27.0, std=2.0),
            _run("u", "unique", 6, 1, L=1, fid=26.0, std=3.0)]
    pairs = looped_vs_unique(runs)
    assert [c.difference.spread for c in pairs] == pytest.approx([math.sqrt(10), math.sqrt(13)])
    mean = mean_looped_minus_unique(pairs)
    assert mean.value == pytest.approx(0.0)
    assert mean.spread == pytest.approx(math.sqrt(10.25))


def _run(name, kind, N, L_max, L, fid, std):
    point = Point(run=name, family="maskgit", scale="tiny", kind=kind, N=N, L=L, L_max=L_max,
                  ilsd=kind == "elt", params=50 * N, params_total=None, gflops=6.0, metric="fid",
                  modality="image", quality=fid, inception_score=None, samples_per_second=None,
                  steps=None, quality_std=std)
    return RunEval(run=name, family="maskgit", scale="tiny", kind=kind, N=N, L_max=L_max,
                   ilsd=kind == "elt", params=50 * N, params_total=None, metric="fid",
                   modality="image", points=(point,))


# ------------------------------------------------------------------------------ the outputs
def test_summary_claims_only_what_the_spreads_support(runs_dir, tmp_path):
    rep = build_report(GRID, runs_dir, floor=tmp_path / "floor.json")
    out = write_report(rep, tmp_path / "results")
    summary = (out / "summary.md").read_text()
    rows = {line.split(" |")[0]: line for line in summary.splitlines()
            if line.startswith("| ") and line[2].isdigit()}
    assert rows["| 1"] == "| 1 | 30.00 ± 1.00 | 35.00 ± 1.00 | +5.00 ± 1.41 | ILSD better |"
    assert rows["| 2"] == "| 2 | 20.00 ± 1.00 | 16.00 ± 1.00 | -4.00 ± 1.41 | vanilla better |"
    assert rows["| 3"] == "| 3 | 15.00 ± 1.00 | 16.00 ± 1.00 | +1.00 ± 1.41 | within noise |"
    mean_line = next(line for line in summary.splitlines()
                     if line.startswith("Mean gap over L < L_max"))
    assert mean_line.startswith("Mean gap over L < L_max: +0.500 ± 1.000: within noise")
    assert "better" not in mean_line and "no difference is claimed" in mean_line

    iso = summary.split("iso-compute (Table 1)")[1]
    assert ("| e (2N x 3L) | 3 | u6 (6) | 15.00 ± 1.00 | 14.50 ± 1.00 | +0.50 ± 1.41 "
            "| within noise |") in iso
    assert "| 20.00 ± 1.00 | 19.00 ± ? | +1.00 ± ? | spread unknown |" in iso
    assert "ELT better" not in iso and "unique better" not in iso  # neither pair is a claim
    assert "looped_minus_unique_mean_fid): +0.750 ± ?: spread unknown" in iso

    # The floor section comes before the front, with the floor values and spreads.
    floor = summary.split("## Real-data floor")[1].split("## Pareto front")[0]
    assert "FID 10.00 ± 0.50 (std over 3 disjoint draws; draws 9.50, 10.00, 10.50)" in floor
    assert "FID 12.00 ± 0.40" in floor and "n = 100 samples" in floor
    assert ("The best point (u6 at 6x1, FID 14.50 ± 1.00) is 2.50 ± 1.08 above the "
            "reconstruction floor and 4.50 ± 1.12 above the real-image floor.") in floor
    front = summary.split("## Pareto front")[1].split("## ILSD")[0]
    assert "- u6 at 6x1: 3 GFLOPs, FID 14.50 ± 1.00" in front
    assert "- u4 at 4x1: 2 GFLOPs, FID 19.00 ± ?" in front
    assert "computed on the point estimates" in front

    m = json.loads((out / "metrics.json").read_text())
    assert (m["best_fid"], m["best_fid_std"]) == (14.5, 1.0)
    assert m["ilsd_vanilla_mean_gap"] == pytest.approx(0.5)
    assert m["ilsd_vanilla_mean_gap_std"] == pytest.approx(1.0)
    assert m["looped_minus_unique_mean_fid"] == pytest.approx(0.75)
    assert m["looped_minus_unique_mean_fid_std"] is None
    assert (m["floor_real_fid"], m["floor_real_fid_std"]) == (10.0, 0.5)
    assert (m["floor_reconstruction_fid"], m["floor_reconstruction_fid_std"]) == (12.0, 0.4)
    pareto = json.loads((out / "pareto.json").read_text())
    assert [(p["run"], p["fid_std"]) for p in pareto["front"]] == [
        ("e", 1.0), ("u4", None), ("u6", 1.0)]


def test_missing_and_malformed_floor(runs_dir, tmp_path):
    rep = build_report(GRID, runs_dir, floor=tmp_path / "none" / "floor.json")
    out = write_report(rep, tmp_path / "results")
    summary = (out / "summary.md").read_text()
    assert f"No real-data floor computed ({tmp_path / 'none' / 'floor.json'} does not exist)" \
        in summary
    assert rep.metrics()["floor_real_fid"] is None

    # A floor measured at another sample count is flagged: FID depends on n.
    (tmp_path / "n50.json").write_text(json.dumps(dict(FLOOR, num_samples=50)))
    rep = build_report(GRID, runs_dir, floor=tmp_path / "n50.json")
    out = write_report(rep, tmp_path / "results")
    assert ("Caution: it was measured on 100 samples, the floor on 50"
            in (out / "summary.md").read_text())

    bad = json.loads(json.dumps(FLOOR))
    bad["metrics"]["fid"]["reconstruction"]["mean"] = "12"
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(FloorFileError, match=r"bad\.json: key 'metrics\.fid\.reconstruction"
                                             r"\.mean' must be a finite number"):
        build_report(GRID, runs_dir, floor=tmp_path / "bad.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(FloorFileError, match=r"bad\.json: not valid JSON"):
        build_report(GRID, runs_dir, floor=tmp_path / "bad.json")


def test_stage_floor_argument_gives_one_line_error(runs_dir, tmp_path, monkeypatch):
    import importlib.util

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    scale = next(iter(params["scales"]))
    params["grid"] = {n: {**g, "scale": scale} for n, g in GRID.items()}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "bad.json").write_text(json.dumps({"num_samples": 0, "metrics": {}}))
    spec = importlib.util.spec_from_file_location("aggregate_stage",
                                                  ROOT / "stages" / "aggregate.py")
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match=r"^aggregate: bad\.json: key 'num_samples' must be an "
                                         r"integer >= 1, got 0$"):
        stage.main(["--params", "params.yaml", "--runs", "runs", "--floor", "bad.json"])


def test_points_csv_and_table_carry_the_spreads(runs_dir, tmp_path):
    out = write_report(build_report(GRID, runs_dir), tmp_path / "results")
    rows = {(r["run"], r["L"]): r for r in csv.DictReader((out / "points.csv").open())}
    e2 = rows["e", "2"]
    assert (float(e2["fid"]), float(e2["fid_std"]), float(e2["fid_lo"]),
            float(e2["fid_hi"])) == (20.0, 1.0, 20.0 - 1.9, 20.0 + 2.1)
    assert (float(e2["kid"]), float(e2["kid_std"])) == (0.0123456789, 0.00098765)  # raw
    assert (float(e2["cfg_scale"]), e2["num_samples"], e2["is_std"]) == (1.5, "100", "")
    # Written without spreads: unknown (empty), not 0; the row still loads.
    u4 = rows["u4", "1"]
    assert float(u4["fid"]) == 19.0
    assert [u4[k] for k in ("fid_std", "fid_lo", "fid_hi", "kid", "kid_std", "cfg_scale")] == [
        ""] * 6
    table = (out / "table.md").read_text()
    assert ("| e | elt | 2N x 2L | 200 | 8 | 1.5 | 2 | 20.00 ± 1.00 | 12.35 ± 0.99 | - | 10 |"
            in table)  # KID x 1000
    assert "| u4 * | unique | 4N x 1L | 400 | 8 | - | 2 | 19.00 ± ? | - | - | 10 |" in table
    assert "KID x 10^3" in table


@pytest.mark.parametrize("edit, message", [
    (lambda e: e.update(fid_std=-0.1), r"\['fid_std'\] must be a finite number >= 0 or null"),
    (lambda e: e.update(kid_std="x"), r"\['kid_std'\] must be a finite number >= 0"),
    (lambda e: e.update(fid_lo=30.0, fid_hi=10.0), r"fid_lo 30\.0 is above fid_hi 10\.0"),
    (lambda e: e.update(num_samples=0), r"\['num_samples'\] must be an integer >= 1"),
])
def test_malformed_spreads_name_file_and_key(runs_dir, edit, message):
    path = runs_dir / "e" / "eval.json"
    data = json.loads(path.read_text())
    edit(data["per_loop"]["2"])
    path.write_text(json.dumps(data))
    with pytest.raises(EvalFileError, match=message) as err:
        build_report(GRID, runs_dir)
    assert str(path) in str(err.value) and "per_loop['2']" in str(err.value)


def test_figures_draw_error_bars_and_floor(runs_dir, tmp_path):
    from elt.aggregate import plots

    rep = build_report(GRID, runs_dir, floor=tmp_path / "floor.json")
    g = rep.group("fid")
    floor = plots.floor_lines(g.floor, "fid")
    fig = plots.vs_gflops_figure(g.runs, g.front, g.fit, tmp_path / "g.png", "fid", floor)
    ax = fig.axes[0]
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    # e, v and u6 have stds; u4 has none: no bar for it (not a bar of 0).
    segments = [s for c in bars for s in c.lines[2][0].get_segments()]
    assert len(bars) == 3 and len(segments) == 3 + 3 + 1
    bar_of = {(s[0][0], (s[0][1] + s[1][1]) / 2): abs(s[1][1] - s[0][1]) / 2 for s in segments}
    assert bar_of[3.0, 14.5] == 1.0  # u6: 14.5 ± 1
    assert (2.0, 19.0) not in bar_of and (2.0, 20.0) in bar_of  # u4 none, e at L2 one
    hlines = {(line.get_ydata()[0], line.get_linestyle()) for line in ax.get_lines()
              if list(line.get_xdata()) == [0, 1]}
    assert hlines == {(10.0, "-"), (12.0, "--")}
    labels = ax.get_legend_handles_labels()[1]
    assert any("real held-out images" in s and "10.00 ± 0.50" in s for s in labels)

    fig = plots.vs_params_figure(g.runs, tmp_path / "p.png", "fid", floor)
    bars = [c for c in fig.axes[0].containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 3  # each run's best point, u4 without
    fig = plots.vs_loops_figure(g.runs, g.pairs, tmp_path / "l.png", "fid", floor)
    ax = fig.axes[0]
    assert len([c for c in ax.containers if isinstance(c, ErrorbarContainer)]) == 2
    assert {line.get_ydata()[0] for line in ax.get_lines()
            if list(line.get_xdata()) == [0, 1]} == {10.0, 12.0}


def test_floor_words_follow_what_the_metric_scores():
    from elt.evaluation.modality import samples_word
    from elt.aggregate.tables import floor_kind_words

    # FVD scores clips (its class says modality "video"), FID images; an unknown name reads "images".
    assert (samples_word("fvd"), samples_word("fid"), samples_word("legacy")) == ("clips", "images", "images")
    assert floor_kind_words("real", "clips") == (
        "real held-out clips (the best any model can expect at this n)", "the real-clip floor")
    assert floor_kind_words("reconstruction:magvit", "clips")[0].startswith("the same clips through the magvit")
    assert floor_kind_words("real")[1] == "the real-image floor"
