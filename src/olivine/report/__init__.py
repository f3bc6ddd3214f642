"""The report of a run's candidates, built from its ``footprint.json`` alone (imports no engine).

report.html                          self-contained page: summary, trade-off plot, table, machine
pareto_frontier.png                  the plot as PNG (needs matplotlib: the ``report`` extra)
pareto_frontier_footprint_chart.html the plot alone, under Olive's name (with plot_pareto_frontier)
"""

from __future__ import annotations

from olivine.report.build import REPORT_NAME, ReportFiles, write_report, write_run_report

__all__ = ["REPORT_NAME", "ReportFiles", "write_report", "write_run_report"]
