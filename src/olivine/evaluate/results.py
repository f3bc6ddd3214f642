"""Metric results in Olive's shape: ``{"<metric>-<sub_type>": {"value", "priority", "higher_is_better"}}``."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any

from olivine.config.evaluators import MetricConfig, SubMetric

#: Olive joins metric and sub-type names with this delimiter.
DELIMITER = "-"


@dataclass(frozen=True)
class MetricValue:
    """One sub-metric's result. ``priority`` -1 means report only.

    Timed metrics (latency, throughput) also carry ``rounds`` (the median of each measuring round) and
    ``spread`` (:func:`round_spread` of those medians; None with a single round): two values closer
    than their spreads are tied (see :mod:`olivine.search.ranking`). Other metrics have neither.
    """

    value: float
    priority: int
    higher_is_better: bool
    spread: float | None = None
    rounds: tuple[float, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        if self.spread is None:
            out.pop("spread")
        if self.rounds is None:
            out.pop("rounds")
        else:
            out["rounds"] = list(self.rounds)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MetricValue:
        spread = data.get("spread")
        rounds = data.get("rounds")
        return cls(
            value=float(data["value"]),
            priority=int(data["priority"]),
            higher_is_better=bool(data["higher_is_better"]),
            spread=None if spread is None else float(spread),
            rounds=None if rounds is None else tuple(float(r) for r in rounds),
        )


def round_spread(rounds: tuple[float, ...]) -> float:
    """How far the round medians stray: half their range, leaving out (with 4 rounds or more) the one
    farthest from their median, so that one round disturbed by other work on the machine (a 40 ms round
    among 22 ms ones) does not make a model tie with everything."""
    kept = sorted(rounds)
    if len(kept) >= 4:
        centre = statistics.median(kept)
        kept.remove(max(kept, key=lambda r: abs(r - centre)))
    return (kept[-1] - kept[0]) / 2


def result_key(metric_name: str, sub_type_name: str) -> str:
    """Olive's flat key, e.g. ``latency-avg``."""
    return f"{metric_name}{DELIMITER}{sub_type_name}"


def metric_value(sub: SubMetric, value: float, rounds: tuple[float, ...] | None = None) -> MetricValue:
    """A result for ``sub`` (its ``higher_is_better`` is always set once the config is validated); with
    ``rounds`` (per-round medians) the spread is :func:`round_spread`."""
    spread = round_spread(rounds) if rounds and len(rounds) > 1 else None
    return MetricValue(
        value=float(value),
        priority=sub.priority,
        higher_is_better=bool(sub.higher_is_better),
        spread=None if spread is None else round(spread, 5),
        rounds=rounds,
    )


def ranked_keys(metrics: list[MetricConfig]) -> list[tuple[str, bool]]:
    """``(result key, higher_is_better)`` of the ranked sub-metrics, priority 1 first."""
    ranked = [
        (sub.priority, result_key(m.name, sub.name), bool(sub.higher_is_better))
        for m in metrics
        for sub in m.sub_types
        if sub.priority > 0
    ]
    return [(key, hib) for _, key, hib in sorted(ranked)]


def results_to_json(results: dict[str, MetricValue]) -> dict[str, dict[str, Any]]:
    return {key: value.to_json() for key, value in results.items()}


def results_from_json(data: dict[str, dict[str, Any]]) -> dict[str, MetricValue]:
    return {key: MetricValue.from_json(value) for key, value in data.items()}
