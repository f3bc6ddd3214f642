"""What the trade-off plot shows, independent of how it is drawn (SVG for the page, PNG via matplotlib).

x is the priority-1 objective, y the priority-2 one. With a single objective, y is the first other metric
every plotted record has (e.g. size), else the candidate's index. A record is plotted when it has a value
for both axes; the others are listed with the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from olivine.report.footprint import CandidateRecord, Footprint, Objective

INDEX_AXIS = "candidate #"
LOG_RATIO = 20.0


@dataclass(frozen=True)
class Axis:
    key: str
    higher_is_better: bool | None  # None: not an objective (no "better" direction shown)
    lo: float
    hi: float
    ticks: tuple[float, ...]
    goal: float | None = None
    goal_text: str | None = None
    log: bool = False  # values spread over more than LOG_RATIO: a log scale keeps them apart

    @property
    def label(self) -> str:
        scale = ", log scale" if self.log else ""
        if self.higher_is_better is None:
            return f"{self.key}{scale}" if self.log else self.key
        return f"{self.key} ({'higher' if self.higher_is_better else 'lower'} is better{scale})"

    def fraction(self, value: float) -> float:
        """Where ``value`` sits between ``lo`` (0) and ``hi`` (1)."""
        if self.log:
            value = max(value, self.lo)  # a whisker reaching zero or below stops at the axis
            return (math.log10(value) - math.log10(self.lo)) / (math.log10(self.hi) - math.log10(self.lo))
        return (value - self.lo) / (self.hi - self.lo)


@dataclass(frozen=True)
class Point:
    id: str
    x: float
    y: float
    x_spread: float | None
    y_spread: float | None
    is_input: bool
    is_best: bool
    on_frontier: bool
    meets_goals: bool | None
    title: str  # tooltip text

    @property
    def kind(self) -> str:
        """One style class: input, frontier, meets (goals met, off the frontier), misses, unknown."""
        if self.is_input:
            return "input"
        if self.on_frontier:
            return "frontier"
        if self.meets_goals is None:
            return "unknown"
        return "meets" if self.meets_goals else "misses"


@dataclass(frozen=True)
class Scatter:
    x: Axis
    y: Axis
    points: tuple[Point, ...]
    frontier: tuple[tuple[float, float], ...]  # frontier points sorted by x: the line drawn through them
    left_out: tuple[tuple[str, str], ...] = field(default=())  # (record id, why it is not plotted)


def build_scatter(fp: Footprint) -> Scatter | None:
    """The plot of ``fp``, or None when no record has a value to plot."""
    objectives = fp.ranked_objectives()
    records = fp.records()
    if not objectives:
        return None
    x_obj = objectives[0]
    x_key = x_obj.key
    if len(objectives) > 1:
        y_key = objectives[1].key
        y_hib: bool | None = objectives[1].higher_is_better
    else:
        y_key = _fallback_y(records, x_key)
        y_hib = None

    points: list[Point] = []
    left_out: list[tuple[str, str]] = []
    for record in records:
        x = record.value(x_key)
        y = float(record.index) if y_key == INDEX_AXIS else record.value(y_key)
        if x is None or y is None or not (math.isfinite(x) and math.isfinite(y)):
            missing = x_key if x is None or not math.isfinite(x) else y_key
            why = record.status if record.status != "evaluated" else f"no {missing}"
            left_out.append((record.id, why))
            continue
        points.append(
            Point(
                id=record.id,
                x=x,
                y=y,
                x_spread=_spread(record, x_key),
                y_spread=_spread(record, y_key),
                is_input=record is fp.input,
                is_best=record.is_best or record.id == fp.best,
                on_frontier=record.on_frontier or record.id in fp.frontier,
                meets_goals=record.meets_goals,
                title=_title(record, [x_key, y_key]),
            )
        )
    if not points:
        return None
    goals = {o.key: o for o in objectives[:2]}
    x_goal = _goal(goals.get(x_key))
    y_goal = _goal(goals.get(y_key))
    x_axis = _axis(x_key, x_obj.higher_is_better, [p.x for p in points], [p.x_spread for p in points], x_goal)
    y_axis = _axis(y_key, y_hib, [p.y for p in points], [p.y_spread for p in points], y_goal)
    frontier = tuple(sorted((p.x, p.y) for p in points if p.on_frontier and not p.is_input))
    return Scatter(x_axis, y_axis, tuple(points), frontier, tuple(left_out))


def _fallback_y(records: list[CandidateRecord], x_key: str) -> str:
    keys = [k for r in records for k in r.metrics if k != x_key]
    for key in dict.fromkeys(keys):
        if all(r.value(key) is not None for r in records if r.value(x_key) is not None):
            return key
    return INDEX_AXIS


def _spread(record: CandidateRecord, key: str) -> float | None:
    metric = record.metrics.get(key)
    if metric is None or metric.spread is None or not math.isfinite(metric.spread) or metric.spread <= 0:
        return None
    return metric.spread


def _goal(objective: Objective | None) -> tuple[float, str] | None:
    if objective is None or objective.goal is None or objective.goal.resolved is None:
        return None
    goal, resolved = objective.goal, objective.goal.resolved
    op = ">=" if objective.higher_is_better else "<="
    return resolved, f"goal {op} {format_number(resolved)} ({goal.type} {format_number(goal.value)})"


def _axis(
    key: str,
    higher_is_better: bool | None,
    values: list[float],
    spreads: list[float | None],
    goal: tuple[float, str] | None,
) -> Axis:
    lows = [v - (s or 0.0) for v, s in zip(values, spreads, strict=True)]
    highs = [v + (s or 0.0) for v, s in zip(values, spreads, strict=True)]
    if goal is not None:
        lows.append(goal[0])
        highs.append(goal[0])
    lo, hi = min(lows), max(highs)
    positive = min(values) > 0 and (goal is None or goal[0] > 0)
    if positive and max(values) / min(values) > LOG_RATIO:
        # e.g. a PyTorch input model 40x slower than its ONNX candidates: linear, they would be one dot
        ends = values + ([goal[0]] if goal else [])
        lo, hi = min(ends), max(ends)
        factor = (hi / lo) ** 0.04
        return Axis(
            key=key,
            higher_is_better=higher_is_better,
            lo=lo / factor,
            hi=hi * factor,
            ticks=tuple(log_ticks(lo, hi)),
            goal=goal[0] if goal else None,
            goal_text=goal[1] if goal else None,
            log=True,
        )
    if hi - lo <= 1e-12 * max(1.0, abs(hi)):
        pad = abs(hi) * 0.05 or 1.0
        lo, hi = lo - pad, hi + pad
    ticks = nice_ticks(lo, hi)
    lo, hi = min(lo, ticks[0]), max(hi, ticks[-1])
    pad = (hi - lo) * 0.04
    return Axis(
        key=key,
        higher_is_better=higher_is_better,
        lo=lo - pad,
        hi=hi + pad,
        ticks=tuple(ticks),
        goal=goal[0] if goal else None,
        goal_text=goal[1] if goal else None,
    )


def log_ticks(lo: float, hi: float) -> list[float]:
    """1, 2 and 5 times the powers of ten within ``[lo, hi]`` (only the powers when that is too many)."""
    ticks = [
        m * 10.0**e
        for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
        for m in (1, 2, 5)
        if lo <= m * 10.0**e <= hi
    ]
    if len(ticks) > 8:
        ticks = [t for t in ticks if math.isclose(10 ** round(math.log10(t)), t)]
    return ticks or [lo, hi]


def nice_ticks(lo: float, hi: float, target: int = 6) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten) covering ``[lo, hi]``."""
    span = hi - lo
    raw = span / max(1, target - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    count = math.ceil((hi - first) / step - 1e-9)
    return [round(first + i * step, 12) for i in range(count + 1)]


def format_number(value: float | None) -> str:
    """Four significant figures, thousands separated for large values; ``-`` for None."""
    if value is None:
        return "-"
    if not math.isfinite(value):
        return str(value)
    if value != 0 and abs(value) >= 1e4:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _title(record: CandidateRecord, keys: list[str]) -> str:
    lines = [f"{record.id}" + (f" ({record.status})" if record.status != "evaluated" else "")]
    lines += [f"{name} = {value}" for name, value in record.point.items()]
    for key in dict.fromkeys(keys):
        metric = record.metrics.get(key)
        if metric is not None:
            spread = f" ± {format_number(metric.spread)}" if metric.spread else ""
            lines.append(f"{key}: {format_number(metric.value)}{spread}")
    return "\n".join(lines)
