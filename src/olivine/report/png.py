"""The trade-off plot as PNG, drawn with matplotlib (optional extra ``report``) from the same
:class:`~olivine.report.scatter.Scatter` as the page's SVG, with the same colours."""

from __future__ import annotations

from pathlib import Path

from olivine.errors import MissingDependencyError
from olivine.report.scatter import Scatter
from olivine.report.svg import BEST_COLOR, COLORS, GOAL_COLOR, KIND_LABELS

INSTALL_HINT = "pip install 'olivine[report]'"


def png_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write_png(scatter: Scatter, path: Path, title: str) -> Path:
    """Draw ``scatter`` into ``path`` (written atomically).

    Raises:
        MissingDependencyError: matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)  # no display: render to a buffer only
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MissingDependencyError(f"the PNG plot needs matplotlib: {INSTALL_HINT}") from exc

    fig = Figure(figsize=(8, 5.2), dpi=110)
    ax = fig.add_subplot()
    if scatter.x.log:
        ax.set_xscale("log")
    if scatter.y.log:
        ax.set_yscale("log")
    ax.set_xlim(scatter.x.lo, scatter.x.hi)
    ax.set_ylim(scatter.y.lo, scatter.y.hi)
    ax.set_xlabel(scatter.x.label)
    ax.set_ylabel(scatter.y.label)
    ax.set_title(title, fontsize=11)
    ax.grid(True, color="#e9ecef")
    if scatter.x.goal is not None:
        ax.axvline(scatter.x.goal, color=GOAL_COLOR, linestyle="--", linewidth=1.2, label="goal")
    if scatter.y.goal is not None:
        label = "_nolegend_" if scatter.x.goal is not None else "goal"
        ax.axhline(scatter.y.goal, color=GOAL_COLOR, linestyle="--", linewidth=1.2, label=label)
    if len(scatter.frontier) > 1:
        xs, ys = zip(*scatter.frontier, strict=True)
        ax.plot(xs, ys, color=COLORS["frontier"][0], linewidth=1.4, zorder=2)
    for kind, label in KIND_LABELS.items():
        points = [p for p in scatter.points if p.kind == kind]
        if not points:
            continue
        fill, edge = COLORS[kind]
        ax.errorbar(
            [p.x for p in points],
            [p.y for p in points],
            xerr=[p.x_spread or 0.0 for p in points],
            yerr=[p.y_spread or 0.0 for p in points],
            fmt="D" if kind == "input" else "o",
            markersize=8 if kind == "input" else 6.5,
            markerfacecolor=fill,
            markeredgecolor=edge,
            ecolor=edge,
            elinewidth=0.8,
            linestyle="none",
            label=label,
            zorder=4 if kind in ("frontier", "input") else 3,
        )
    best = [p for p in scatter.points if p.is_best]
    if best:
        ax.scatter(
            [p.x for p in best],
            [p.y for p in best],
            s=260,
            facecolors="none",
            edgecolors=BEST_COLOR,
            linewidths=1.8,
            label="best",
            zorder=5,
        )
    ax.legend(loc="best", fontsize=8, framealpha=0.9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png")
    tmp.replace(path)
    return path
