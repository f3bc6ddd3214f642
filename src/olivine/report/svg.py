"""The trade-off plot as inline SVG (presentation attributes only, so it renders without the page's CSS).

Each plotted record is a ``<g class="pt <kind>" data-id="<id>">`` with a ``<title>`` tooltip; the page's
script links these groups to the table rows with the same ``data-id``.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape

from olivine.report.scatter import Axis, Point, Scatter, format_number

WIDTH, HEIGHT = 760, 500
LEFT, RIGHT, TOP, BOTTOM = 80, 24, 20, 100  # BOTTOM holds the tick labels, the x label and the legend

#: kind -> (fill, stroke); shared with the PNG renderer so both pictures read the same.
COLORS = {
    "frontier": ("#d9480f", "#a61e00"),
    "meets": ("#1c7ed6", "#1864ab"),
    "misses": ("#ffffff", "#868e96"),
    "unknown": ("#ced4da", "#868e96"),
    "input": ("#2b8a3e", "#1b5e20"),
}
KIND_LABELS = {
    "frontier": "on the frontier",
    "meets": "meets the goals",
    "misses": "misses a goal",
    "unknown": "goals not judged",
    "input": "input model",
}
Scale = Callable[[float], float]
GOAL_COLOR = "#c92a2a"
BEST_COLOR = "#000000"


def render_svg(scatter: Scatter) -> str:
    pw, ph = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(value: float) -> float:
        return LEFT + scatter.x.fraction(value) * pw

    def py(value: float) -> float:
        return TOP + (1 - scatter.y.fraction(value)) * ph

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="plot" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" font-family="sans-serif" font-size="12" '
        f'aria-label="{escape(scatter.y.key)} against {escape(scatter.x.key)}">',
        f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="#fcfcfd" stroke="#adb5bd"/>',
    ]
    out += _grid(scatter.x, scatter.y, px, py, pw, ph)
    out += _goal_lines(scatter, px, py, pw, ph)
    if len(scatter.frontier) > 1:
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in scatter.frontier)
        out.append(
            f'<polyline class="frontier-line" points="{path}" fill="none" '
            f'stroke="{COLORS["frontier"][0]}" stroke-width="1.5"/>'
        )
    # Draw the frontier and the input last so they sit on top of the others.
    order = {"misses": 0, "unknown": 0, "meets": 1, "frontier": 2, "input": 3}
    for point in sorted(scatter.points, key=lambda p: order[p.kind]):
        out.append(_point(point, px, py))
    out += _legend(scatter)
    out.append("</svg>")
    return "\n".join(out)


def _grid(x: Axis, y: Axis, px: Scale, py: Scale, pw: float, ph: float) -> list[str]:
    out: list[str] = []
    for tick in x.ticks:
        if x.lo <= tick <= x.hi:
            xx = px(tick)
            out.append(f'<line x1="{xx:.1f}" y1="{TOP}" x2="{xx:.1f}" y2="{TOP + ph}" stroke="#e9ecef"/>')
            out.append(
                f'<text x="{xx:.1f}" y="{TOP + ph + 16}" text-anchor="middle">{format_number(tick)}</text>'
            )
    for tick in y.ticks:
        if y.lo <= tick <= y.hi:
            yy = py(tick)
            out.append(f'<line x1="{LEFT}" y1="{yy:.1f}" x2="{LEFT + pw}" y2="{yy:.1f}" stroke="#e9ecef"/>')
            out.append(
                f'<text x="{LEFT - 6}" y="{yy + 4:.1f}" text-anchor="end">{format_number(tick)}</text>'
            )
    out.append(
        f'<text class="axis-label" x="{LEFT + pw / 2:.1f}" y="{TOP + ph + 38}" text-anchor="middle" '
        f'font-weight="bold">{escape(x.label)}</text>'
    )
    cy = TOP + ph / 2
    out.append(
        f'<text class="axis-label" x="16" y="{cy:.1f}" text-anchor="middle" font-weight="bold" '
        f'transform="rotate(-90 16 {cy:.1f})">{escape(y.label)}</text>'
    )
    return out


def _goal_lines(scatter: Scatter, px: Scale, py: Scale, pw: float, ph: float) -> list[str]:
    out: list[str] = []
    dash = f'stroke="{GOAL_COLOR}" stroke-width="1.5" stroke-dasharray="6 4"'
    if scatter.x.goal is not None:
        xx = px(scatter.x.goal)
        out.append(f'<line class="goal" x1="{xx:.1f}" y1="{TOP}" x2="{xx:.1f}" y2="{TOP + ph}" {dash}/>')
        out.append(
            f'<text class="goal-label" x="{xx + 4:.1f}" y="{TOP + 14}" fill="{GOAL_COLOR}">'
            f"{escape(scatter.x.key)} {escape(scatter.x.goal_text or '')}</text>"
        )
    if scatter.y.goal is not None:
        yy = py(scatter.y.goal)
        out.append(f'<line class="goal" x1="{LEFT}" y1="{yy:.1f}" x2="{LEFT + pw}" y2="{yy:.1f}" {dash}/>')
        out.append(
            f'<text class="goal-label" x="{LEFT + pw - 4}" y="{yy - 5:.1f}" text-anchor="end" '
            f'fill="{GOAL_COLOR}">{escape(scatter.y.key)} {escape(scatter.y.goal_text or "")}</text>'
        )
    return out


def _point(point: Point, px: Scale, py: Scale) -> str:
    cx, cy = px(point.x), py(point.y)
    fill, stroke = COLORS[point.kind]
    parts = [f'<g class="pt {point.kind}{" best" if point.is_best else ""}" data-id="{escape(point.id)}">']
    parts.append(f"<title>{escape(point.title)}</title>")
    if point.x_spread:
        x0, x1 = px(point.x - point.x_spread), px(point.x + point.x_spread)
        parts.append(f'<line x1="{x0:.1f}" y1="{cy:.1f}" x2="{x1:.1f}" y2="{cy:.1f}" stroke="{stroke}"/>')
    if point.y_spread:
        y0, y1 = py(point.y - point.y_spread), py(point.y + point.y_spread)
        parts.append(f'<line x1="{cx:.1f}" y1="{y0:.1f}" x2="{cx:.1f}" y2="{y1:.1f}" stroke="{stroke}"/>')
    if point.is_input:
        r = 7
        parts.append(
            f'<path class="mark" d="M{cx:.1f},{cy - r:.1f} L{cx + r:.1f},{cy:.1f} L{cx:.1f},{cy + r:.1f} '
            f'L{cx - r:.1f},{cy:.1f} Z" fill="{fill}" stroke="{stroke}" stroke-width="1.5"/>'
        )
    else:
        parts.append(
            f'<circle class="mark" cx="{cx:.1f}" cy="{cy:.1f}" r="5.5" fill="{fill}" '
            f'stroke="{stroke}" stroke-width="1.5"/>'
        )
    if point.is_best:
        parts.append(
            f'<circle class="best-ring" cx="{cx:.1f}" cy="{cy:.1f}" r="10" fill="none" '
            f'stroke="{BEST_COLOR}" stroke-width="2"/>'
        )
    parts.append("</g>")
    return "".join(parts)


def _legend(scatter: Scatter) -> list[str]:
    kinds = [k for k in KIND_LABELS if any(p.kind == k for p in scatter.points)]
    y = HEIGHT - 26
    x = float(LEFT)
    out = ['<g class="legend">']
    for kind in kinds:
        fill, stroke = COLORS[kind]
        if kind == "input":
            out.append(
                f'<path d="M{x},{y - 6} L{x + 6},{y} L{x},{y + 6} L{x - 6},{y} Z" fill="{fill}" '
                f'stroke="{stroke}"/>'
            )
        else:
            out.append(
                f'<circle cx="{x}" cy="{y}" r="5" fill="{fill}" stroke="{stroke}" stroke-width="1.5"/>'
            )
        label = KIND_LABELS[kind]
        out.append(f'<text x="{x + 10}" y="{y + 4}">{label}</text>')
        x += 22 + 6.5 * len(label)
    if any(p.is_best for p in scatter.points):
        out.append(f'<circle cx="{x}" cy="{y}" r="8" fill="none" stroke="{BEST_COLOR}" stroke-width="2"/>')
        out.append(f'<text x="{x + 13}" y="{y + 4}">best</text>')
        x += 50
    if scatter.x.goal is not None or scatter.y.goal is not None:
        out.append(
            f'<line x1="{x - 6}" y1="{y}" x2="{x + 14}" y2="{y}" stroke="{GOAL_COLOR}" '
            'stroke-width="1.5" stroke-dasharray="6 4"/>'
        )
        out.append(f'<text x="{x + 20}" y="{y + 4}">goal</text>')
    out.append("</g>")
    if any(p.x_spread or p.y_spread for p in scatter.points):
        out.append(f'<text x="{LEFT}" y="{HEIGHT - 6}" fill="#495057">whiskers: ± the recorded spread</text>')
    return out
