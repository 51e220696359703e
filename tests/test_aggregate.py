"""Aggregate stage end to end on hand-made eval.json files whose results are computed by hand.

Grid (scale "tiny", family maskgit; GFLOPs grow linearly with L, as the paper's do):

  run        kind     N L_max params | L: (GFLOPs, FID)
  t-2x3-elt  elt      2 3     1000   | 1:(1,30) 2:(2,20) 3:(3,15) 4:(4,16)
  t-2x3-van  vanilla  2 3     1000   | 1:(1,60) 2:(2,40) 3:(3,16) 4:(4,25)
  t-6x1-uni  unique   6 1     3000   | 1:(3,14)
  t-4x2-elt  elt      4 2     2000   | 1:(2,22) 2:(4,12) 3:(6,11.5)

Front by hand (sweep by GFLOPs keeping FID records): (1,30) t-2x3-elt L1, (2,20) t-2x3-elt L2,
(3,14) t-6x1-uni, (4,12) t-4x2-elt L2, (6,11.5) t-4x2-elt L3.
ILSD - vanilla gaps (vanilla - ILSD): L1 30, L2 20, L3 1, L4 9; mean over L < 3 = 25.
Iso-compute looped vs unique (ELT run at L vs unique depth N*L): t-2x3-elt at L=3 (depth 6)
15 vs 14 (diff +1, params ratio 3) is the only pair: t-2x3-elt at L=1, 2, 4 (depths 2, 4, 8)
and t-4x2-elt (depths 4, 8, 12) have no unique run of that depth; the vanilla run is not paired.
"""

import csv
import json
from pathlib import Path

import pytest
import yaml
from PIL import Image

from elt.aggregate import EvalFileError, build_report, report as report_mod, write_report

ROOT = Path(__file__).resolve().parents[1]

RUNS = {
    "t-2x3-elt": dict(kind="elt", N=2, L_max=3, ilsd=True, params=1000,
                      loops={1: (1, 30), 2: (2, 20), 3: (3, 15), 4: (4, 16)}),
    "t-2x3-van": dict(kind="vanilla", N=2, L_max=3, ilsd=False, params=1000,
                      loops={1: (1, 60), 2: (2, 40), 3: (3, 16), 4: (4, 25)}),
    "t-6x1-uni": dict(kind="unique", N=6, L_max=1, ilsd=False, params=3000, loops={1: (3, 14)}),
    "t-4x2-elt": dict(kind="elt", N=4, L_max=2, ilsd=True, params=2000,
                      loops={1: (2, 22), 2: (4, 12), 3: (6, 11.5)}),
}
GRID = {name: {"scale": "tiny", "N": r["N"], "L_max": r["L_max"], "ilsd": r["ilsd"]}
        for name, r in RUNS.items()}
# metrics.json keys of an FID grid, in order, as they were before other metrics existed ...
OLD_FID_METRIC_KEYS = [
    "n_runs", "n_points", "n_front_points", "best_fid", "best_fid_run", "best_fid_L",
    "best_fid_gflops", "fit_a", "fit_b", "fit_c", "n_ilsd_vanilla_pairs", "ilsd_vanilla_mean_gap",
    "n_looped_unique_pairs", "looped_minus_unique_mean_fid"]
# ... and with the spreads and the real-data floor beside them.
FID_METRIC_KEYS = [
    "n_runs", "n_points", "n_front_points", "best_fid", "best_fid_std", "best_fid_run",
    "best_fid_L", "best_fid_gflops", "fit_a", "fit_b", "fit_c", "n_ilsd_vanilla_pairs",
    "ilsd_vanilla_mean_gap", "ilsd_vanilla_mean_gap_std", "n_looped_unique_pairs",
    "looped_minus_unique_mean_fid", "looped_minus_unique_mean_fid_std", "floor_real_fid",
    "floor_real_fid_std", "floor_reconstruction_fid", "floor_reconstruction_fid_std"]


def _eval_json(name, r):
    return {
        "run": name, "family": "maskgit", "scale": "tiny", "N": r["N"], "L_max": r["L_max"],
        "ilsd": r["ilsd"], "kind": r["kind"], "params": r["params"],
        "params_total": r["params"] + 500,
        "per_loop": {str(L): {"fid": f, "gflops": g, "samples_per_second": 100.0 / g,
                              "is": 2.0 * L} for L, (g, f) in r["loops"].items()},
    }


@pytest.fixture()
def runs_dir(tmp_path):
    runs = tmp_path / "runs"
    for name, r in RUNS.items():
        (runs / name).mkdir(parents=True)
        (runs / name / "eval.json").write_text(json.dumps(_eval_json(name, r)))
    # A run removed from the grid: its folder stays on disk and must be ignored.
    (runs / "old-removed").mkdir()
    (runs / "old-removed" / "eval.json").write_text(json.dumps(
        _eval_json("old-removed", dict(RUNS["t-2x3-elt"], loops={1: (0.1, 0.5)}))))
    return runs


def test_points_front_fit_and_comparisons(runs_dir):
    rep = build_report(GRID, runs_dir, steps=8)
    assert [(p.run, p.L) for p in rep.points] == [
        ("t-2x3-elt", 1), ("t-2x3-elt", 2), ("t-2x3-elt", 3), ("t-2x3-elt", 4),
        ("t-2x3-van", 1), ("t-2x3-van", 2), ("t-2x3-van", 3), ("t-2x3-van", 4),
        ("t-6x1-uni", 1), ("t-4x2-elt", 1), ("t-4x2-elt", 2), ("t-4x2-elt", 3)]
    # eval.json files without "metric" are FID on images: one group.
    assert [(g.metric, g.modality) for g in rep.groups] == [("fid", "image")]
    fid = rep.group("fid")
    assert {(p.metric, p.modality) for p in rep.points} == {("fid", "image")}
    assert [(p.run, p.L, p.gflops, p.quality) for p in fid.front] == [
        ("t-2x3-elt", 1, 1.0, 30.0), ("t-2x3-elt", 2, 2.0, 20.0), ("t-6x1-uni", 1, 3.0, 14.0),
        ("t-4x2-elt", 2, 4.0, 12.0), ("t-4x2-elt", 3, 6.0, 11.5)]
    assert fid.fit.ok
    a, b, c = fid.fit.coeffs
    assert a >= 0 and b >= 0 and c >= 0

    (pair,) = fid.pairs
    assert (pair.ilsd_run, pair.vanilla_run) == ("t-2x3-elt", "t-2x3-van")
    assert [(g.L, g.gap) for g in pair.loops] == [(1, 30.0), (2, 20.0), (3, 1.0), (4, 9.0)]
    assert pair.mean_gap_below_L_max == pytest.approx(25.0)

    assert [(c.looped_run, c.L, c.unique_run, c.depth, c.quality_looped, c.quality_unique,
             c.quality_diff, c.params_ratio) for c in fid.vs_unique] == [
        ("t-2x3-elt", 3, "t-6x1-uni", 6, 15.0, 14.0, 1.0, 3.0)]

    m = rep.metrics()
    assert m["n_runs"] == 4 and m["n_points"] == 12 and m["n_front_points"] == 5
    assert (m["best_fid"], m["best_fid_run"], m["best_fid_L"]) == (11.5, "t-4x2-elt", 3)
    assert m["ilsd_vanilla_mean_gap"] == pytest.approx(25.0)
    assert m["n_looped_unique_pairs"] == 1
    assert m["looped_minus_unique_mean_fid"] == pytest.approx(1.0)
    assert (m["fit_a"], m["fit_b"], m["fit_c"]) == fid.fit.coeffs
    # FID runs keep their MLflow and `dvc metrics` names; the new keys come beside them.
    assert list(m) == FID_METRIC_KEYS
    assert [k for k in m if k in OLD_FID_METRIC_KEYS] == OLD_FID_METRIC_KEYS
    # These eval.json files have no spreads and there is no floor: unknown, never 0.
    assert {k: m[k] for k in FID_METRIC_KEYS if k not in OLD_FID_METRIC_KEYS} == dict.fromkeys(
        set(FID_METRIC_KEYS) - set(OLD_FID_METRIC_KEYS))


def test_written_files(runs_dir, tmp_path):
    out = write_report(build_report(GRID, runs_dir, steps=8), tmp_path / "results",
                       metrics_path=tmp_path / "results_metrics.json")

    rows = list(csv.DictReader((out / "points.csv").open()))
    assert len(rows) == 12
    row = rows[2]  # t-2x3-elt at L = 3
    assert (row["run"], row["kind"], row["N"], row["L"], row["L_max"], row["params"],
            row["params_total"], row["steps"]) == ("t-2x3-elt", "elt", "2", "3", "3", "1000",
                                                   "1500", "8")
    assert float(row["gflops"]) == 3.0 and float(row["fid"]) == 15.0
    assert float(row["is"]) == 6.0 and float(row["samples_per_second"]) == pytest.approx(100 / 3)
    assert [r["on_front"] for r in rows].count("True") == 5

    table = (out / "table.md").read_text()
    # No spreads in these eval.json files: shown as unknown ("± ?"), never as 0.
    assert ("| t-2x3-elt | elt | 2N x 3L | 1K | 8 | - | 3 | 15.00 ± ? | - | 6.0 ± ? | 33.3 |"
            in table)
    assert ("| t-6x1-uni * | unique | 6N x 1L | 3K | 8 | - | 3 | 14.00 ± ? | - | 2.0 ± ? "
            "| 33.3 |") in table

    pareto = json.loads((out / "pareto.json").read_text())
    assert [(p["run"], p["L"], p["label"]) for p in pareto["front"]] == [
        ("t-2x3-elt", 1, "2x1"), ("t-2x3-elt", 2, "2x2"), ("t-6x1-uni", 1, "6x1"),
        ("t-4x2-elt", 2, "4x2"), ("t-4x2-elt", 3, "4x3")]
    assert pareto["fit"]["a"] is not None

    summary = (out / "summary.md").read_text()
    assert "| 1 | 30.00 ± ? | 60.00 ± ? | +30.00 ± ? | spread unknown |" in summary
    assert "Mean gap over L < L_max: +25.000" in summary
    assert ("| tiny | t-2x3-elt (2N x 3L) | 3 | t-6x1-uni (6) | 15.00 ± ? | 14.00 ± ? "
            "| +1.00 ± ? | spread unknown | 1K | 3K | 3.00x | 3 | 3 |") in summary
    # Without spreads nothing is claimed, however large the difference.
    assert "ILSD better" not in summary and "unique better" not in summary
    assert "Mean FID diff over all 1 iso-compute pairs" in summary and "+1.000" in summary

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == json.loads((tmp_path / "results_metrics.json").read_text())
    assert metrics["ilsd_vanilla_mean_gap"] == 25.0

    for name in ("fid_vs_gflops.png", "fid_vs_params.png", "fid_vs_loops.png"):
        with Image.open(out / name) as img:
            img.verify()  # raises on a corrupt PNG
        with Image.open(out / name) as img:
            assert img.format == "PNG" and img.size[0] > 300 and img.size[1] > 200

    plot_rows = list(csv.DictReader((out / "plots" / "fid_vs_gflops.csv").open()))
    assert len(plot_rows) == 12 and set(plot_rows[0]) >= {"run", "L", "gflops", "fid"}
    loops_rows = list(csv.DictReader((out / "plots" / "fid_vs_loops.csv").open()))
    assert [(r["run"], r["L"], float(r["fid"])) for r in loops_rows][4] == ("t-2x3-van", "1", 60.0)
    assert len(list(csv.DictReader((out / "plots" / "pareto_front.csv").open()))) == 5
    params_rows = list(csv.DictReader((out / "plots" / "fid_vs_params.csv").open()))
    assert [(r["run"], r["best_L"], float(r["fid"])) for r in params_rows] == [
        ("t-2x3-elt", "3", 15.0), ("t-2x3-van", "3", 16.0), ("t-6x1-uni", "1", 14.0),
        ("t-4x2-elt", "3", 11.5)]
    # Nothing but the results folder and the metrics copy: no temp folders left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results", "results_metrics.json", "runs"]


def test_missing_eval_json_names_the_file(runs_dir):
    (runs_dir / "t-6x1-uni" / "eval.json").unlink()
    with pytest.raises(EvalFileError, match=r"t-6x1-uni/eval\.json"):
        build_report(GRID, runs_dir)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(N=3), "key 'N' is 3 but grid run 't-2x3-elt' has 2"),
    (lambda d: d.update(kind="vanilla"), "make it 'elt'"),
    (lambda d: d["per_loop"]["2"].pop("fid"), r"per_loop\['2'\] is missing key 'fid'"),
    (lambda d: d["per_loop"]["1"].update(gflops=-1.0), r"per_loop\['1'\]\['gflops'\] must be"),
    (lambda d: d.update(run="other"), "key 'run' is 'other'"),
    (lambda d: d["per_loop"].update({"01": d["per_loop"]["1"]}), "without leading zeros"),
])
def test_malformed_eval_json_errors_name_file_and_key(runs_dir, edit, message):
    path = runs_dir / "t-2x3-elt" / "eval.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(EvalFileError, match=message) as err:
        build_report(GRID, runs_dir)
    assert str(path) in str(err.value)


def test_failed_write_keeps_previous_results(runs_dir, tmp_path, monkeypatch):
    rep = build_report(GRID, runs_dir)
    out = write_report(rep, tmp_path / "results")
    before = (out / "table.md").read_text()

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    # Fault injection in the last file written: the old folder must survive untouched.
    monkeypatch.setattr(report_mod.plots, "vs_loops_figure", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        write_report(rep, out)
    assert (out / "table.md").read_text() == before and (out / "fid_vs_loops.png").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results", "runs"]


def test_stage_entry_point(runs_dir, tmp_path, monkeypatch):
    """The DVC command on a real params.yaml: grid keys only, steps from eval.json."""
    import importlib.util

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    scale = next(iter(params["scales"]))  # a scale the real config defines
    params["grid"] = {name: {**g, "scale": scale} for name, g in GRID.items()}
    for name in RUNS:  # the eval files must agree with the grid's scale
        path = runs_dir / name / "eval.json"
        data = json.loads(path.read_text())
        data["scale"] = scale
        data["sampling_steps"] = 12
        path.write_text(json.dumps(data))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))

    spec = importlib.util.spec_from_file_location("aggregate_stage",
                                                  ROOT / "stages" / "aggregate.py")
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    monkeypatch.chdir(tmp_path)
    assert stage.main(["--params", "params.yaml", "--runs", "runs", "--out", "results"]) == 0
    rows = list(csv.DictReader(open("results/points.csv")))
    assert {r["run"] for r in rows} == set(RUNS) and {r["steps"] for r in rows} == {"12"}
    assert json.loads(Path("results_metrics.json").read_text())["n_front_points"] == 5


def test_twins_must_be_unambiguous_and_figures_exist_without_pairs(runs_dir, tmp_path):
    from elt.aggregate.collect import load_runs
    from elt.aggregate.compare import ilsd_vanilla_pairs

    clone = _eval_json("t-2x3-van2", RUNS["t-2x3-van"])
    (runs_dir / "t-2x3-van2").mkdir()
    (runs_dir / "t-2x3-van2" / "eval.json").write_text(json.dumps(clone))
    grid = dict(GRID, **{"t-2x3-van2": GRID["t-2x3-van"]})
    with pytest.raises(ValueError, match=r"'t-2x3-elt' has several vanilla twins"):
        ilsd_vanilla_pairs(load_runs(grid, runs_dir))

    # Only the unique run and one ILSD run: no ILSD-vanilla pair, no equal-depth baseline.
    small = {k: GRID[k] for k in ("t-6x1-uni", "t-4x2-elt")}
    rep = build_report(small, runs_dir)
    fid = rep.group("fid")
    assert fid.pairs == () and fid.vs_unique == ()
    assert [(p.run, p.L) for p in fid.front] == [("t-4x2-elt", 1), ("t-6x1-uni", 1),
                                                 ("t-4x2-elt", 2), ("t-4x2-elt", 3)]
    assert rep.metrics()["ilsd_vanilla_mean_gap"] is None
    out = write_report(rep, tmp_path / "res")
    for name in ("fid_vs_gflops.png", "fid_vs_params.png", "fid_vs_loops.png"):
        with Image.open(out / name) as img:
            assert img.format == "PNG"
    assert "No ILSD run has a vanilla twin" in (out / "summary.md").read_text()


def test_steps_from_eval_json_override_the_default(runs_dir):
    path = runs_dir / "t-6x1-uni" / "eval.json"
    data = json.loads(path.read_text())
    data["sampling_steps"] = 24  # the key the evaluate stage writes
    path.write_text(json.dumps(data))
    rep = build_report(GRID, runs_dir, steps=8)
    assert {(p.run, p.steps) for p in rep.points if p.run in ("t-6x1-uni", "t-4x2-elt")} == {
        ("t-6x1-uni", 24), ("t-4x2-elt", 8)}


# ------------------------------------------------------------------ several metrics in one grid
# FVD video runs (family magvit) next to the FID image runs above. Hand computation:
#
#   run        kind     N L_max params | L: (GFLOPs, FVD)
#   v-2x2-elt  elt      2 2     500    | 1:(0.5,250) 2:(1,160) 3:(1.5,170)
#   v-2x2-van  vanilla  2 2     500    | 1:(0.5,400) 2:(1,175) 3:(1.5,190)
#   v-4x1-uni  unique   4 1     1000   | 1:(1,150)
#   v-4x2-elt  elt      4 2     1000   | 1:(1,155) 2:(2,100)
#
# FVD front (sweep by GFLOPs keeping records): (0.5,250) v-2x2-elt L1, (1,150) v-4x1-uni L1,
# (2,100) v-4x2-elt L2. These lie on FVD = 100 * G^-1 + 50, so the 3-point fit is exact.
# ILSD - vanilla gaps: L1 150, L2 15, L3 20; mean over L < 2 = 150.
# Iso-compute pairs (unique v-4x1-uni has depth 4): v-2x2-elt at L=2 160 vs 150 (+10, params
# ratio 2), v-4x2-elt at L=1 155 vs 150 (+5, ratio 1); mean 7.5. v-2x2-van (vanilla) is not paired.
# One front over both metrics would be wrong: (0.5, 250) would be its cheapest point and the FID
# points (1, 30) ... would dominate every FVD point above it.
VIDEO_RUNS = {
    "v-2x2-elt": dict(kind="elt", N=2, L_max=2, ilsd=True, params=500,
                      loops={1: (0.5, 250), 2: (1, 160), 3: (1.5, 170)}),
    "v-2x2-van": dict(kind="vanilla", N=2, L_max=2, ilsd=False, params=500,
                      loops={1: (0.5, 400), 2: (1, 175), 3: (1.5, 190)}),
    "v-4x1-uni": dict(kind="unique", N=4, L_max=1, ilsd=False, params=1000, loops={1: (1, 150)}),
    "v-4x2-elt": dict(kind="elt", N=4, L_max=2, ilsd=True, params=1000,
                      loops={1: (1, 155), 2: (2, 100)}),
}
VIDEO_GRID = {name: {"family": "magvit", "scale": "tiny", "N": r["N"], "L_max": r["L_max"],
                     "ilsd": r["ilsd"]} for name, r in VIDEO_RUNS.items()}
# Interleaved with the image runs: grouping must not depend on grid order.
MIXED_GRID = dict(zip(list(GRID)[:2], list(GRID.values())[:2]))
MIXED_GRID.update(VIDEO_GRID)
MIXED_GRID.update({k: GRID[k] for k in list(GRID)[2:]})


def _video_eval_json(name, r):
    """The new contract: metric and modality named, the value under per_loop[L]["fvd"]."""
    return {
        "run": name, "family": "magvit", "scale": "tiny", "N": r["N"], "L_max": r["L_max"],
        "ilsd": r["ilsd"], "kind": r["kind"], "params": r["params"], "params_total": None,
        "metric": "fvd", "modality": "video", "sampling_steps": 12,
        "per_loop": {str(L): {"fvd": f, "gflops": g, "samples_per_second": 10.0 / g,
                              "num_samples": 8} for L, (g, f) in r["loops"].items()},
    }


@pytest.fixture()
def mixed_dir(runs_dir):
    """runs_dir plus the video runs; the image runs there now name their metric explicitly."""
    for name, r in RUNS.items():
        path = runs_dir / name / "eval.json"
        data = json.loads(path.read_text())
        data.update(metric="fid", modality="image")
        path.write_text(json.dumps(data))
    for name, r in VIDEO_RUNS.items():
        (runs_dir / name).mkdir()
        (runs_dir / name / "eval.json").write_text(json.dumps(_video_eval_json(name, r)))
    return runs_dir


def test_mixed_grid_gives_each_metric_its_own_front_fit_and_comparisons(mixed_dir):
    rep = build_report(MIXED_GRID, mixed_dir)
    assert [(g.metric, g.modality) for g in rep.groups] == [("fid", "image"), ("fvd", "video")]
    assert len(rep.runs) == 8 and len(rep.points) == 12 + 9
    fid, fvd = rep.group("fid"), rep.group("fvd")
    assert {p.run for p in fid.points} == set(RUNS)
    assert {p.run for p in fvd.points} == set(VIDEO_RUNS)

    # FID: exactly the numbers of the FID-only grid.
    alone = build_report(GRID, mixed_dir).group("fid")
    assert fid.front == alone.front and fid.fit == alone.fit
    assert fid.pairs == alone.pairs and fid.vs_unique == alone.vs_unique

    assert [(p.run, p.L, p.gflops, p.quality) for p in fvd.front] == [
        ("v-2x2-elt", 1, 0.5, 250.0), ("v-4x1-uni", 1, 1.0, 150.0), ("v-4x2-elt", 2, 2.0, 100.0)]
    assert fvd.fit.ok
    assert fvd.fit.coeffs == pytest.approx((100.0, 1.0, 50.0), rel=1e-4)

    (pair,) = fvd.pairs
    assert (pair.ilsd_run, pair.vanilla_run) == ("v-2x2-elt", "v-2x2-van")
    assert [(g.L, g.gap) for g in pair.loops] == [(1, 150.0), (2, 15.0), (3, 20.0)]
    assert pair.mean_gap_below_L_max == pytest.approx(150.0)
    assert [(c.looped_run, c.L, c.unique_run, c.depth, c.quality_diff, c.params_ratio)
            for c in fvd.vs_unique] == [("v-2x2-elt", 2, "v-4x1-uni", 4, 10.0, 2.0),
                                        ("v-4x2-elt", 1, "v-4x1-uni", 4, 5.0, 1.0)]

    m = rep.metrics()
    fid_alone = build_report(GRID, mixed_dir).metrics()
    assert m["n_runs"] == 8 and m["n_points"] == 21
    assert {k: m[k] for k in FID_METRIC_KEYS[2:]} == {k: fid_alone[k] for k in FID_METRIC_KEYS[2:]}
    fvd_keys = {k: v for k, v in m.items() if k not in FID_METRIC_KEYS}
    a, b, c = fvd.fit.coeffs
    assert fvd_keys == {
        "fvd_n_front_points": 3, "best_fvd": 100.0, "best_fvd_run": "v-4x2-elt", "best_fvd_L": 2,
        "best_fvd_gflops": 2.0, "fvd_fit_a": a, "fvd_fit_b": b, "fvd_fit_c": c,
        "fvd_n_ilsd_vanilla_pairs": 1, "fvd_ilsd_vanilla_mean_gap": 150.0,
        "fvd_n_looped_unique_pairs": 2, "looped_minus_unique_mean_fvd": 7.5,
        # no spreads in these files, no floor: unknown (None), under FVD's own names
        **dict.fromkeys(["best_fvd_std", "fvd_ilsd_vanilla_mean_gap_std",
                         "looped_minus_unique_mean_fvd_std", "floor_real_fvd",
                         "floor_real_fvd_std", "floor_reconstruction_fvd",
                         "floor_reconstruction_fvd_std"])}


FID_FILES = ["fid_vs_gflops.png", "fid_vs_loops.png", "fid_vs_params.png", "metrics.json",
             "pareto.json", "plots/fid_vs_gflops.csv", "plots/fid_vs_loops.csv",
             "plots/fid_vs_params.csv", "plots/pareto_front.csv", "points.csv", "summary.md",
             "table.md"]
FVD_FILES = ["fvd_pareto.json", "fvd_points.csv", "fvd_summary.md", "fvd_table.md",
             "fvd_vs_gflops.png", "fvd_vs_loops.png", "fvd_vs_params.png",
             "plots/fvd_pareto_front.csv", "plots/fvd_vs_gflops.csv", "plots/fvd_vs_loops.csv",
             "plots/fvd_vs_params.csv"]


def _tree(out):
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


def test_mixed_grid_files_fid_unchanged_fvd_named_by_metric(mixed_dir, tmp_path):
    fid_only = write_report(build_report(GRID, mixed_dir), tmp_path / "fid-only")
    rep = build_report(MIXED_GRID, mixed_dir)
    out = write_report(rep, tmp_path / "mixed")
    assert _tree(fid_only) == FID_FILES
    assert _tree(out) == sorted(FID_FILES + FVD_FILES) == sorted(rep.files())

    # The FID outputs are byte for byte those of the FID-only grid (figures aside: PNG bytes are
    # not compared, their data are the plots/ CSVs).
    for name in FID_FILES:
        if name.endswith((".csv", ".md", ".json")) and name != "metrics.json":
            assert (out / name).read_text() == (fid_only / name).read_text(), name

    rows = list(csv.DictReader((out / "fvd_points.csv").open()))
    assert "fvd" in rows[0] and "fid" not in rows[0]
    assert {r["run"] for r in rows} == set(VIDEO_RUNS) and len(rows) == 9
    assert [(r["run"], r["L"]) for r in rows if r["on_front"] == "True"] == [
        ("v-2x2-elt", "1"), ("v-4x1-uni", "1"), ("v-4x2-elt", "2")]
    assert {r["steps"] for r in rows} == {"12"} and {r["is"] for r in rows} == {""}

    table = (out / "fvd_table.md").read_text()
    assert "| GFLOPs (multiply-adds) | FVD | KID x 10^3 | IS |" in table and "FID" not in table
    assert "| v-4x2-elt * | elt | 4N x 2L | 1K | 12 | - | 2 | 100.00 ± ? | - | - | 5 |" in table

    pareto = json.loads((out / "fvd_pareto.json").read_text())
    assert (pareto["metric"], pareto["modality"]) == ("fvd", "video")
    assert [(p["run"], p["L"], p["fvd"]) for p in pareto["front"]] == [
        ("v-2x2-elt", 1, 250.0), ("v-4x1-uni", 1, 150.0), ("v-4x2-elt", 2, 100.0)]
    assert pareto["fit"]["formula"] == "fvd = a * gflops**-b + c"
    assert pareto["fit"]["c"] == pytest.approx(50.0, rel=1e-4)

    summary = (out / "fvd_summary.md").read_text()
    assert "# Aggregate summary: FVD (video)" in summary and "FID" not in summary
    assert "| 1 | 250.00 ± ? | 400.00 ± ? | +150.00 ± ? | spread unknown |" in summary
    assert "Mean gap over L < L_max: +150.000" in summary
    assert ("| tiny | v-4x2-elt (4N x 1L) | 2 | v-4x1-uni (4) | 155.00 ± ? | 150.00 ± ? "
            "| +5.00 ± ? | spread unknown | 1K | 1K | 1.00x | 1 | 1 |") in summary
    assert "v-2x2-van (" not in summary.split("iso-compute (Table 1)")[1]  # vanilla not paired
    assert "t-" not in summary  # no image run in the video summary

    plot_rows = list(csv.DictReader((out / "plots" / "fvd_vs_gflops.csv").open()))
    assert len(plot_rows) == 9 and "fvd" in plot_rows[0]
    front_rows = list(csv.DictReader((out / "plots" / "fvd_pareto_front.csv").open()))
    assert [float(r["fvd"]) for r in front_rows] == [250.0, 150.0, 100.0]
    for name in ("fvd_vs_gflops.png", "fvd_vs_params.png", "fvd_vs_loops.png"):
        with Image.open(out / name) as img:
            assert img.format == "PNG"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["best_fid"] == 11.5 and metrics["best_fvd"] == 100.0


def test_fvd_only_grid_has_no_fid_outputs(mixed_dir, tmp_path):
    rep = build_report(VIDEO_GRID, mixed_dir)
    out = write_report(rep, tmp_path / "res")
    assert _tree(out) == sorted(["metrics.json"] + FVD_FILES)
    assert not any("fid" in k for k in rep.metrics())
    with pytest.raises(KeyError, match="fid"):
        rep.group("fid")


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.pop("modality"), "missing key 'modality'"),
    (lambda d: d.pop("metric"), "missing key 'metric'"),
    (lambda d: d.update(metric="FVD (16 frames)"), "key 'metric' must be a lowercase name"),
    # The value sits under the metric's name; an "fid" key does not stand in for it.
    (lambda d: d["per_loop"]["2"].update(fid=d["per_loop"]["2"].pop("fvd")),
     r"per_loop\['2'\] is missing key 'fvd'"),
    (lambda d: d["per_loop"]["1"].update(fvd=-1.0), r"per_loop\['1'\]\['fvd'\] must be"),
])
def test_malformed_metric_keys_name_file_and_key(mixed_dir, edit, message):
    path = mixed_dir / "v-2x2-elt" / "eval.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(EvalFileError, match=message) as err:
        build_report(MIXED_GRID, mixed_dir)
    assert str(path) in str(err.value)


def test_grid_family_defaults_to_maskgit(mixed_dir):
    """A grid entry without `family` is a MaskGIT run: a MAGVIT eval.json then is stale."""
    grid = dict(VIDEO_GRID, **{"v-4x1-uni": {k: v for k, v in VIDEO_GRID["v-4x1-uni"].items()
                                             if k != "family"}})
    with pytest.raises(EvalFileError, match="key 'family' is 'magvit' but grid run 'v-4x1-uni' "
                                            "has 'maskgit'"):
        build_report(grid, mixed_dir)


def test_one_metric_on_two_modalities_is_refused(mixed_dir):
    path = mixed_dir / "v-4x1-uni" / "eval.json"
    data = json.loads(path.read_text())
    data.update(metric="fid", per_loop={"1": {"fid": 150.0, "gflops": 1.0}})
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="metric 'fid' is used for two modalities"):
        build_report(MIXED_GRID, mixed_dir)


def test_stage_grid_entry_reads_family():
    import importlib.util
    from types import SimpleNamespace

    spec = importlib.util.spec_from_file_location("aggregate_stage",
                                                  ROOT / "stages" / "aggregate.py")
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    point = SimpleNamespace(scale="tiny", N=2, L_max=2, ilsd=True, kind="elt")
    assert stage._grid_entry(point)["family"] == "maskgit"
    assert stage._grid_entry(SimpleNamespace(**vars(point), family="magvit")) == {
        "scale": "tiny", "N": 2, "L_max": 2, "ilsd": True, "kind": "elt", "family": "magvit"}


# ------------------------------------------------- vanilla looping is kept off the headline front
# A grid where the vanilla ablation would dominate everything (hand computation):
#
#   run        kind     N L_max params | L: (GFLOPs, FID)
#   d-2x2-elt  elt      2 2     100    | 1:(1,150) 2:(2,100)
#   d-2x2-van  vanilla  2 2     100    | 1:(0.9,60) 2:(1.8,40)
#   d-4x1-uni  unique   4 1     200    | 1:(4,75)
#
# With vanilla in the front it would be (0.9,60), (1.8,40) alone (each lower FID at lower GFLOPs
# than every other point), too few for a fit. Over ELT + unique only the front is (1,150), (2,100),
# (4,75), which lie on FID = 100 * G^-1 + 50, so the 3-point fit is exactly (100, 1, 50).
# Iso-compute: d-2x2-elt at L=2 (depth 4) 100 vs 75 = +25, params ratio 2; at L=1 (depth 2) none;
# the vanilla run (N * L_max = 4 too) is not paired. ILSD - vanilla: L1 60-150 = -90,
# L2 40-100 = -60; mean over L < 2 = -90 (the ablation stays in Fig. 8's comparison).
DOMINATING_RUNS = {
    "d-2x2-elt": dict(kind="elt", N=2, L_max=2, ilsd=True, params=100,
                      loops={1: (1, 150), 2: (2, 100)}),
    "d-2x2-van": dict(kind="vanilla", N=2, L_max=2, ilsd=False, params=100,
                      loops={1: (0.9, 60), 2: (1.8, 40)}),
    "d-4x1-uni": dict(kind="unique", N=4, L_max=1, ilsd=False, params=200, loops={1: (4, 75)}),
}


def test_vanilla_never_enters_front_fit_or_headline(tmp_path):
    from elt.aggregate.pareto import pareto_front

    runs = tmp_path / "runs"
    for name, r in DOMINATING_RUNS.items():
        (runs / name).mkdir(parents=True)
        (runs / name / "eval.json").write_text(json.dumps(_eval_json(name, r)))
    grid = {name: {"scale": "tiny", "N": r["N"], "L_max": r["L_max"], "ilsd": r["ilsd"]}
            for name, r in DOMINATING_RUNS.items()}
    rep = build_report(grid, runs, steps=8)
    fid = rep.group("fid")
    # The vanilla points would take the whole front if they were eligible ...
    assert [(p.run, p.L) for p in pareto_front(fid.points)] == [("d-2x2-van", 1), ("d-2x2-van", 2)]
    # ... but the headline front and fit are over ELT + unique only.
    assert [(p.run, p.L, p.gflops, p.quality) for p in fid.front] == [
        ("d-2x2-elt", 1, 1.0, 150.0), ("d-2x2-elt", 2, 2.0, 100.0), ("d-4x1-uni", 1, 4.0, 75.0)]
    assert fid.fit.ok and fid.fit.coeffs == pytest.approx((100.0, 1.0, 50.0), rel=1e-4)
    assert [(c.looped_run, c.L, c.unique_run, c.depth, c.quality_diff, c.params_ratio)
            for c in fid.vs_unique] == [("d-2x2-elt", 2, "d-4x1-uni", 4, 25.0, 2.0)]
    (pair,) = fid.pairs  # the ablation stays in the ILSD-vs-vanilla comparison
    assert [(g.L, g.gap) for g in pair.loops] == [(1, -90.0), (2, -60.0)]
    m = rep.metrics()
    assert m["n_front_points"] == 3 and m["fit_c"] == pytest.approx(50.0, rel=1e-4)
    # the headline best is the unique run's 75, not vanilla's lower 40
    assert (m["best_fid"], m["best_fid_L"]) == (75.0, 1)
    assert m["n_looped_unique_pairs"] == 1 and m["looped_minus_unique_mean_fid"] == 25.0
    assert m["ilsd_vanilla_mean_gap"] == -90.0

    out = write_report(rep, tmp_path / "results")
    rows = list(csv.DictReader((out / "points.csv").open()))
    assert len(rows) == 5  # vanilla points stay in the table ...
    assert [(r["run"], r["L"], r["on_front"], r["front_eligible"]) for r in rows] == [
        ("d-2x2-elt", "1", "True", "True"), ("d-2x2-elt", "2", "True", "True"),
        ("d-2x2-van", "1", "False", "False"), ("d-2x2-van", "2", "False", "False"),
        ("d-4x1-uni", "1", "True", "True")]  # ... marked as not eligible for the front
    table = (out / "table.md").read_text()
    assert "| d-2x2-van | vanilla (ablation) | 2N x 1L |" in table
    assert "vanilla looping (kind vanilla) is an ablation" in table
    pareto = json.loads((out / "pareto.json").read_text())
    assert pareto["front_kinds"] == ["elt", "unique"]
    assert {p["kind"] for p in pareto["front"]} == {"elt", "unique"}
    summary = (out / "summary.md").read_text()
    assert "over ELT runs and unique-layer baselines only" in summary
    assert "FID = 100 * G^-1 + 50" in summary
    assert [float(r["fid"]) for r in
            csv.DictReader((out / "plots" / "pareto_front.csv").open())] == [150.0, 100.0, 75.0]


# ------------------------------------------------------ iso-compute pairs at every inference L
def _run(name, kind, N, L_max, params, loops, scale="tiny"):
    from elt.aggregate.collect import Point, RunEval

    points = tuple(Point(run=name, family="maskgit", scale=scale, kind=kind, N=N, L=L,
                         L_max=L_max, ilsd=kind == "elt", params=params, params_total=None,
                         gflops=g, metric="fid", modality="image", quality=q,
                         inception_score=None, samples_per_second=None, steps=None)
                   for L, (g, q) in sorted(loops.items()))
    return RunEval(run=name, family="maskgit", scale=scale, kind=kind, N=N, L_max=L_max,
                   ilsd=kind == "elt", params=params, params_total=None, metric="fid",
                   modality="image", points=points)


# Hand computation (GFLOPs = N * L, params = 50 * unique layers):
#   e-2x3  elt N=2 L_max=3: L1 (2,40) L2 (4,30) L3 (6,25) L4 (8,24)
#   e-3x2  elt N=3 L_max=2: L1 (3,33) L2 (6,27)
#   u2, u4, u6 unique depth 2, 4, 6: (2,38) (4,28) (6,26); u8-big depth 8 of another scale
#   v-2x3  vanilla N=2 L_max=3 (same points as e-2x3 + 10)
# Pairs: e-2x3 L1 -> u2: 40-38 = +2, ratio 100/100 = 1; L2 -> u4: 30-28 = +2, ratio 200/100 = 2;
# L3 -> u6: 25-26 = -1, ratio 300/100 = 3; L4: no depth-8 run of scale tiny -> none.
# e-3x2 (trained with L_max=2) L1: depth 3 none; L2 -> u6: 27-26 = +1, ratio 300/150 = 2.
# v-2x3: none. Mean diff over the 4 pairs = (2 + 2 - 1 + 1) / 4 = 1.0.
ISO_RUNS = [
    _run("e-2x3", "elt", 2, 3, 100, {1: (2, 40), 2: (4, 30), 3: (6, 25), 4: (8, 24)}),
    _run("v-2x3", "vanilla", 2, 3, 100, {1: (2, 50), 2: (4, 40), 3: (6, 35), 4: (8, 34)}),
    _run("e-3x2", "elt", 3, 2, 150, {1: (3, 33), 2: (6, 27)}),
    _run("u2", "unique", 2, 1, 100, {1: (2, 38)}),
    _run("u4", "unique", 4, 1, 200, {1: (4, 28)}),
    _run("u6", "unique", 6, 1, 300, {1: (6, 26)}),
    _run("u8-big", "unique", 8, 1, 400, {1: (8, 20)}, scale="big"),
]


def test_iso_compute_pairs_at_every_L():
    from elt.aggregate.compare import looped_vs_unique
    from elt.aggregate.report import _metric_report

    pairs = looped_vs_unique(ISO_RUNS)
    assert [(c.looped_run, c.L, c.L_max, c.unique_run, c.depth, c.quality_looped,
             c.quality_unique, c.quality_diff, c.gflops_looped, c.gflops_unique,
             c.params_looped, c.params_unique, c.params_ratio) for c in pairs] == [
        ("e-2x3", 1, 3, "u2", 2, 40.0, 38.0, 2.0, 2.0, 2.0, 100, 100, 1.0),
        ("e-2x3", 2, 3, "u4", 4, 30.0, 28.0, 2.0, 4.0, 4.0, 100, 200, 2.0),
        ("e-2x3", 3, 3, "u6", 6, 25.0, 26.0, -1.0, 6.0, 6.0, 100, 300, 3.0),
        ("e-3x2", 2, 2, "u6", 6, 27.0, 26.0, 1.0, 6.0, 6.0, 150, 300, 2.0)]
    assert not any(c.looped_run == "v-2x3" for c in pairs)

    g = _metric_report("fid", "image", ISO_RUNS)
    m = g.metrics()
    assert m["n_looped_unique_pairs"] == 4 and m["looped_minus_unique_mean_fid"] == 1.0
    from elt.aggregate import tables
    summary = tables.summary_markdown(g.pairs, g.vs_unique, g.front, g.fit, "fid", "image")
    assert ("| tiny | e-2x3 (2N x 2L) | 3 | u4 (4) | 30.00 ± ? | 28.00 ± ? | +2.00 ± ? "
            "| spread unknown | 100 | 200 | 2.00x | 4 | 4 |") in summary
    assert "Mean FID diff over all 4 iso-compute pairs" in summary and ": +1.000" in summary

    # Two unique runs of depth 4 in one setting: ambiguous, both named.
    with pytest.raises(ValueError, match=r"'e-2x3' at L=2 has several unique-depth baselines "
                                         r"\['u4', 'u4-again'\] of depth 4"):
        looped_vs_unique(ISO_RUNS + [_run("u4-again", "unique", 4, 1, 200, {1: (4, 29)})])
