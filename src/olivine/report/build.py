"""Writing the report files from a footprint: for ``olivine report`` and at the end of a run."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from olivine.errors import OlivineError
from olivine.report.footprint import FOOTPRINT_NAME, Footprint, load_footprint
from olivine.report.page import render_chart_page, render_page
from olivine.report.png import INSTALL_HINT, png_available, write_png
from olivine.report.scatter import build_scatter

logger = logging.getLogger(__name__)

REPORT_NAME = "report.html"
PNG_NAME = "pareto_frontier.png"
CHART_NAME = "pareto_frontier_footprint_chart.html"  # Olive's file name for the same plot


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    png: Path | None = None
    chart: Path | None = None
    png_skipped: str | None = None  # why there is no PNG when one was asked for

    def paths(self) -> list[Path]:
        return [p for p in (self.html, self.png, self.chart) if p is not None]


def write_report(
    footprint: Footprint, dest: Path, *, source: str, png: bool = True, chart: bool = False
) -> ReportFiles:
    """Write ``report.html`` into ``dest`` and, when asked, the PNG plot and Olive's chart page.

    A PNG asked for without matplotlib installed is skipped with the reason in ``png_skipped``; so is
    one with nothing to plot.
    """
    dest.mkdir(parents=True, exist_ok=True)
    scatter = build_scatter(footprint)
    html = _write_text(dest / REPORT_NAME, render_page(footprint, scatter, source))
    png_path = chart_path = None
    skipped = None
    if png or chart:
        if scatter is None:
            skipped = "nothing to plot (no record has values for the ranked objectives)"
        else:
            if chart:
                chart_path = _write_text(dest / CHART_NAME, render_chart_page(scatter, footprint.workflow_id))
            if png and not png_available():
                skipped = f"matplotlib is not installed ({INSTALL_HINT})"
            elif png:
                png_path = write_png(scatter, dest / PNG_NAME, f"{footprint.workflow_id}: candidates")
    return ReportFiles(html, png_path, chart_path, skipped)


def write_run_report(output_dir: Path, *, plot: bool) -> ReportFiles | None:
    """The end-of-run hook: the report beside ``<output_dir>/footprint.json``; with ``plot``
    (Olive's ``plot_pareto_frontier``) also the PNG and Olive's chart page.

    The best model is already in place when this runs, so a report that cannot be written is logged as
    an error and does not fail the run.
    """
    try:
        footprint = load_footprint(output_dir / FOOTPRINT_NAME)
        files = write_report(
            footprint, output_dir, source=str(output_dir / FOOTPRINT_NAME), png=plot, chart=plot
        )
    except (OlivineError, OSError) as exc:
        logger.error("report not written in %s: %s", output_dir, exc)
        return None
    except Exception as exc:  # a bug in the report must not cost the user a finished run
        logger.error("report not written in %s: %s: %s", output_dir, type(exc).__name__, exc, exc_info=True)
        return None
    if files.png_skipped:
        logger.warning("plot_pareto_frontier: %s not written: %s", PNG_NAME, files.png_skipped)
    logger.info("report: %s", files.html)
    return files


def _write_text(path: Path, text: str) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
