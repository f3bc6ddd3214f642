"""Goals: the value each sub-metric must reach (ranking lives in :mod:`olivine.search.ranking`).

Goal maths (Olive's; m = +1 when higher is better, else -1; b = the input model's value):
``threshold`` = v; ``max-degradation`` = b - m v; ``min-improvement`` = b + m v;
``percent-max-degradation`` = b (1 - m v / 100); ``percent-min-improvement`` = b (1 + m v / 100).
A result meets its goal when it is at least the goal value (higher is better) or at most it (lower is better).
"""

from __future__ import annotations

from collections.abc import Mapping

from olivine.config.evaluators import EvaluatorConfig, Goal
from olivine.errors import ConfigError
from olivine.evaluate.results import MetricValue, result_key

_RELATIVE = ("max-degradation", "min-improvement", "percent-max-degradation", "percent-min-improvement")


def goal_value(goal: Goal, baseline: float | None, higher_is_better: bool) -> float:
    """The value a result must reach for ``goal``.

    Raises:
        ConfigError: a relative goal without a baseline, or a negative relative goal value.
    """
    if goal.type == "threshold":
        return goal.value
    if baseline is None:
        raise ConfigError(
            f"goal '{goal.type}' is relative to the input model: keep engine.evaluate_input_model true"
        )
    if goal.value < 0:
        raise ConfigError(f"goal '{goal.type}' needs a non-negative value (got {goal.value})")
    m = 1.0 if higher_is_better else -1.0
    if goal.type == "max-degradation":
        return baseline - m * goal.value
    if goal.type == "min-improvement":
        return baseline + m * goal.value
    if goal.type == "percent-max-degradation":
        return baseline * (1 - m * goal.value / 100)
    return baseline * (1 + m * goal.value / 100)


def resolve_goals(
    evaluator: EvaluatorConfig, baseline: Mapping[str, MetricValue] | None = None
) -> dict[str, float]:
    """Result key -> goal value for every sub-metric that has a goal.

    Args:
        evaluator: the evaluator config.
        baseline: the input model's results (needed for relative goals).

    Raises:
        ConfigError: a relative goal whose baseline is missing; names the metric.
    """
    goals: dict[str, float] = {}
    for metric in evaluator.metrics:
        for sub in metric.sub_types:
            if sub.goal is None:
                continue
            key = result_key(metric.name, sub.name)
            base = baseline.get(key) if baseline is not None else None
            try:
                goals[key] = goal_value(sub.goal, base.value if base else None, bool(sub.higher_is_better))
            except ConfigError as exc:
                raise ConfigError(f"{key}: {exc.message}") from None
    return goals
