"""`elt budget`: the best point within a budget, and those within noise of it, from a points.csv
written by the aggregate's own writer; hand-checked choices."""
import pytest

from elt.aggregate.budget import read_points, report
from elt.aggregate.collect import Point
from elt.aggregate.tables import points_csv
from elt.cli import main


def _point(run, L, gflops, quality, std, sps, params, kind="elt"):
    return Point(run=run, family="maskgit", scale="tiny", kind=kind, N=2, L=L, L_max=3, ilsd=True, params=params,
                 params_total=None, gflops=gflops, metric="fid", modality="image", quality=quality,
                 inception_score=None, samples_per_second=sps, steps=8, quality_std=std, cfg_scale=1.5,
                 num_samples=100)


@pytest.fixture
def results(tmp_path):
    points = [
        _point("e", 1, 1.0, 30.0, 1.0, 100.0, 1000),
        _point("e", 2, 2.0, 20.0, 1.0, 50.0, 1000),
        _point("u", 1, 2.5, 21.0, 1.0, None, 3000, kind="unique"),  # 1 +- 1.41 from e@2: a tie
        _point("e", 3, 3.0, 10.0, 1.0, 10.0, 1000),
    ]
    (tmp_path / "points.csv").write_text(points_csv(points, [], "fid"))
    return tmp_path


def test_best_point_and_its_ties_within_each_budget(results):
    assert [p.quality for p in read_points(results)["fid"]] == [30.0, 20.0, 21.0, 10.0]
    text = report(results, gflops=2.5)
    assert "3 of 4 points fit" in text
    assert "best: e at 2x2 (L=2, CFG 1.5): FID 20.00 ± 1.00, 2 GFLOPs, 50 samples/s, 1,000 params" in text
    assert "within noise of it (diff +1.00 ± 1.41" in text and "u at 2x1" in text
    text = report(results, gflops=3)
    assert "best: e at 2x3" in text and "within noise" not in text  # 11 +- 1.41 from u: real
    # throughput: u's is unknown, so it cannot meet a throughput limit
    assert "best: e at 2x2" in report(results, samples_per_second=40)
    assert "2 of 4 points fit" in report(results, samples_per_second=40)
    assert "within noise" not in report(results, gflops=2.5, max_params=2000)
    none = report(results, gflops=0.5)
    assert "0 of 4 points fit" in none and "none: the cheapest is e at 2x1" in none


def test_cli_prints_the_choice_and_names_bad_input(results, capsys):
    assert main(["budget", "--gflops", "2.5", "--results", str(results)]) == 0
    assert "best: e at 2x2" in capsys.readouterr().out
    for argv, words in ((["budget", "--results", str(results)], "give a budget"),
                        (["budget", "--gflops", "-1", "--results", str(results)], "--gflops must be a positive number"),
                        (["budget", "--gflops", "1", "--metric", "fvd", "--results", str(results)],
                         "no points of metric 'fvd' (it has: fid)"),
                        (["budget", "--gflops", "1", "--results", str(results / "nowhere")], "no points.csv")):
        assert main(argv) != 0  # run_main: one "error:" line, exit code 1
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err, err
