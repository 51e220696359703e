"""Aggregate stage: Pareto front, power-law fit, tables, figures and summary of a grid of runs.

Runs are grouped by their quality metric (FID for images, FVD for video, ...): each metric gets
its own front, fit, comparisons and outputs (see report.output_name for the file names).
"""

from elt.aggregate.collect import EvalFileError, Point, RunEval, load_runs, parse_eval
from elt.aggregate.compare import (IlsdVanillaPair, LoopedVsUnique, ilsd_vanilla_pairs,
                                   looped_vs_unique)
from elt.aggregate.pareto import PowerLawFit, fit_power_law, pareto_front, power_law
from elt.aggregate.report import (FIGURE_TEMPLATES, MetricReport, Report, build_report,
                                  output_name, write_report)

__all__ = [
    "EvalFileError", "Point", "RunEval", "load_runs", "parse_eval", "IlsdVanillaPair",
    "LoopedVsUnique", "ilsd_vanilla_pairs", "looped_vs_unique", "PowerLawFit", "fit_power_law",
    "pareto_front", "power_law", "FIGURE_TEMPLATES", "MetricReport", "Report", "build_report",
    "output_name", "write_report",
]
