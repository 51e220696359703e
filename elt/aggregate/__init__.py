"""Aggregate stage: Pareto front, power-law fit, tables, figures and summary of a grid of runs.

Runs are grouped by their quality metric (FID for images, FVD for video, ...): each metric gets
its own front, fit, comparisons and outputs (see report.output_name for the file names).
Every quality number carries its spread; compare.Difference.verdict is the one rule that decides
whether a difference is real (|diff| > Z * spread), and floor.py reads the real-data floor.
"""

from elt.aggregate.collect import EvalFileError, Point, RunEval, load_runs, parse_eval
from elt.aggregate.compare import (Z, Difference, Estimate, IlsdVanillaPair, LoopedVsUnique,
                                   combine, ilsd_vanilla_pairs, looped_vs_unique)
from elt.aggregate.floor import Floor, FloorFileError, load_floor
from elt.aggregate.pareto import PowerLawFit, fit_power_law, pareto_front, power_law
from elt.aggregate.report import (FIGURE_TEMPLATES, MetricReport, Report, build_report,
                                  output_name, write_report)

__all__ = [
    "EvalFileError", "Point", "RunEval", "load_runs", "parse_eval", "Z", "Difference",
    "Estimate", "combine", "IlsdVanillaPair", "LoopedVsUnique", "ilsd_vanilla_pairs",
    "looped_vs_unique", "Floor", "FloorFileError", "load_floor", "PowerLawFit", "fit_power_law",
    "pareto_front", "power_law", "FIGURE_TEMPLATES", "MetricReport", "Report", "build_report",
    "output_name", "write_report",
]
