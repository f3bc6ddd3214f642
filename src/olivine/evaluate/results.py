"""Metric results in Olive's shape: ``{"<metric>-<sub_type>": {"value", "priority", "higher_is_better"}}``."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from olivine.config.evaluators import MetricConfig, SubMetric

#: Olive joins metric and sub-type names with this delimiter.
DELIMITER = "-"


@dataclass(frozen=True)
class MetricValue:
    """One sub-metric's result. ``priority`` -1 means report only."""

    value: float
    priority: int
    higher_is_better: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MetricValue:
        return cls(
            value=float(data["value"]),
            priority=int(data["priority"]),
            higher_is_better=bool(data["higher_is_better"]),
        )


def result_key(metric_name: str, sub_type_name: str) -> str:
    """Olive's flat key, e.g. ``latency-avg``."""
    return f"{metric_name}{DELIMITER}{sub_type_name}"


def metric_value(sub: SubMetric, value: float) -> MetricValue:
    """A result for ``sub`` (its ``higher_is_better`` is always set once the config is validated)."""
    return MetricValue(value=float(value), priority=sub.priority, higher_is_better=bool(sub.higher_is_better))


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
