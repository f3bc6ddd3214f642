"""THE ranking rule: goals, priorities, honest ties, and the Pareto frontier.

The engine (best model), the hosts (best so far in a job's status), the report and the CLI all rank with
these functions; nobody else re-implements them.

- **Goals** (Olive's maths, :mod:`olivine.evaluate.goals`) resolve against the input model's metrics. A
  candidate *meets the goals* when every sub-metric with a goal reaches it.
- **Order**: candidates that meet the goals come first. Then the ranked sub-metrics (``priority`` 1, 2,
  ...) decide in turn, each in its better direction; a missing or NaN value is worst.
- **Ties**: a timed metric (latency, throughput) carries the median of each measuring round and its
  ``spread`` (half the range of those medians, leaving out with 4 rounds or more the one farthest from
  their median, so one round disturbed by other work does not widen it). Two values whose intervals
  ``value ± spread`` overlap, i.e. ``|a - b| <= spread_a + spread_b``, are *tied*: the measurement
  cannot tell them apart, so that priority does not decide and the next one does. Values without a
  spread tie only when equal.
- **Best**: among the candidates that meet the goals (all of them when none does), priority 1 keeps the
  candidate that measured best on it and every candidate tied with that one; priority 2 decides among
  those in the same way, and so on; the earliest in proposal order of what remains wins. Ties are not
  transitive (a 27 ms model can tie with a 16 ms one that ties with a 12 ms one); measuring every tie
  against the leader keeps a model that is distinguishably slower than the fastest one from winning
  through such a chain. The result does not depend on the order candidates finished in.
- **Pareto frontier**: among the candidates that meet all goals, those that no other candidate
  *dominates* (at least as good, i.e. better or tied, on every ranked objective and strictly better on one).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from olivine.config.evaluators import EvaluatorConfig
from olivine.evaluate.results import MetricValue, result_key

Metrics = Mapping[str, MetricValue]


@dataclass(frozen=True)
class Objective:
    """A ranked sub-metric (``priority`` > 0) and its goal, resolved to a value when it has one."""

    key: str
    priority: int
    higher_is_better: bool
    goal_type: str | None = None
    goal_value: float | None = None
    resolved: float | None = None

    def to_json(self) -> dict[str, Any]:
        goal = None
        if self.goal_type is not None:
            goal = {"type": self.goal_type, "value": self.goal_value, "resolved": self.resolved}
        return {
            "key": self.key,
            "priority": self.priority,
            "higher_is_better": self.higher_is_better,
            "goal": goal,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Objective:
        goal = data.get("goal") or {}
        return cls(
            key=str(data["key"]),
            priority=int(data["priority"]),
            higher_is_better=bool(data["higher_is_better"]),
            goal_type=goal.get("type"),
            goal_value=goal.get("value"),
            resolved=goal.get("resolved"),
        )


@dataclass(frozen=True)
class Objectives:
    """The ranked objectives in priority order, and every resolved goal (report-only metrics may have
    goals too: they are constraints without a rank)."""

    ranked: tuple[Objective, ...] = ()
    goals: Mapping[str, float] = field(default_factory=dict)

    def to_json(self) -> list[dict[str, Any]]:
        return [o.to_json() for o in self.ranked]

    @classmethod
    def from_json(cls, data: Sequence[Mapping[str, Any]]) -> Objectives:
        ranked = tuple(sorted((Objective.from_json(d) for d in data), key=lambda o: o.priority))
        return cls(ranked, {o.key: o.resolved for o in ranked if o.resolved is not None})

    @property
    def directions(self) -> list[bool]:
        return [o.higher_is_better for o in self.ranked]

    def values(self, metrics: Metrics) -> list[float]:
        """The ranked objectives' values (NaN when missing), in priority order."""
        return [metrics[o.key].value if o.key in metrics else math.nan for o in self.ranked]


def resolve_objectives(evaluator: EvaluatorConfig, baseline: Metrics | None) -> Objectives:
    """Objectives of ``evaluator`` with goals resolved against ``baseline`` (the input model's metrics).

    Raises:
        ConfigError: a relative goal without a baseline; names the metric.
    """
    from olivine.evaluate.goals import resolve_goals

    goals = resolve_goals(evaluator, baseline)
    ranked = []
    for metric in evaluator.metrics:
        for sub in metric.sub_types:
            if sub.priority <= 0:
                continue
            key = result_key(metric.name, sub.name)
            ranked.append(
                Objective(
                    key=key,
                    priority=sub.priority,
                    higher_is_better=bool(sub.higher_is_better),
                    goal_type=sub.goal.type if sub.goal else None,
                    goal_value=sub.goal.value if sub.goal else None,
                    resolved=goals.get(key),
                )
            )
    return Objectives(tuple(sorted(ranked, key=lambda o: o.priority)), goals)


def _usable(value: MetricValue | None) -> bool:
    return value is not None and not math.isnan(value.value)


def meets_goals(metrics: Metrics, objectives: Objectives, *, partial: bool = False) -> bool:
    """Whether every goal is met; a goal whose metric is missing (or NaN) is not met, unless ``partial``
    (then only the goals of the metrics present are checked: can this candidate still meet them all?)."""
    for key, goal in objectives.goals.items():
        value = metrics.get(key)
        if value is None and partial:
            continue
        if value is None or not _usable(value):
            return False
        if not (value.value >= goal if value.higher_is_better else value.value <= goal):
            return False
    return True


def tied(a: MetricValue, b: MetricValue) -> bool:
    """Whether the measurements cannot tell ``a`` and ``b`` apart: their ``value ± spread`` intervals
    overlap (values without a spread tie only when equal)."""
    return abs(a.value - b.value) <= (a.spread or 0.0) + (b.spread or 0.0)


def compare_on(a: MetricValue | None, b: MetricValue | None, higher_is_better: bool) -> int:
    """-1 when ``a`` is better, 1 when ``b`` is, 0 when tied (or both missing)."""
    if not _usable(a) or not _usable(b):
        return 0 if _usable(a) == _usable(b) else (-1 if _usable(a) else 1)
    assert a is not None and b is not None
    if tied(a, b):
        return 0
    a_better = a.value > b.value if higher_is_better else a.value < b.value
    return -1 if a_better else 1


def compare(a: Metrics, b: Metrics, objectives: Objectives) -> int:
    """-1 when ``a`` ranks before ``b``, 1 after, 0 when nothing tells them apart."""
    meets_a, meets_b = meets_goals(a, objectives), meets_goals(b, objectives)
    if meets_a != meets_b:
        return -1 if meets_a else 1
    for objective in objectives.ranked:
        decided = compare_on(a.get(objective.key), b.get(objective.key), objective.higher_is_better)
        if decided:
            return decided
    return 0


def _leader(pool: Sequence[int], candidates: Sequence[Metrics | None], objective: Objective) -> int:
    """The candidate of ``pool`` with the best value on ``objective`` (ignoring ties; missing is worst;
    the earlier one on equal values)."""
    leader = pool[0]
    for index in pool[1:]:
        a, b = (candidates[index] or {}).get(objective.key), (candidates[leader] or {}).get(objective.key)
        if not _usable(a):
            continue
        assert a is not None
        if not _usable(b):
            leader = index
            continue
        assert b is not None
        if (a.value > b.value) if objective.higher_is_better else (a.value < b.value):
            leader = index
    return leader


def best_index(candidates: Sequence[Metrics | None], objectives: Objectives) -> int | None:
    """Index of the best candidate (None entries, e.g. failed candidates, are skipped): among those that
    meet the goals (all, when none does), each priority in turn keeps the candidates tied with the one
    that measured best on it; the earliest of the last group wins. See the module docstring."""
    pool = [i for i, m in enumerate(candidates) if m is not None]
    if not pool:
        return None
    meeting = [i for i in pool if meets_goals(candidates[i] or {}, objectives)]
    pool = meeting or pool
    for objective in objectives.ranked:
        if len(pool) == 1:
            break
        leader = _leader(pool, candidates, objective)
        best = (candidates[leader] or {}).get(objective.key)
        pool = [
            i
            for i in pool
            if i == leader
            or compare_on((candidates[i] or {}).get(objective.key), best, objective.higher_is_better) == 0
        ]
    return pool[0]


def ranking_order(candidates: Sequence[Metrics | None], objectives: Objectives) -> list[int]:
    """Indices of the non-None candidates, best first (repeatedly the best of the rest: ties keep
    proposal order)."""
    remaining = [i for i, m in enumerate(candidates) if m is not None]
    order: list[int] = []
    while remaining:
        pick = best_index([candidates[i] for i in remaining], objectives)
        assert pick is not None
        order.append(remaining.pop(pick))
    return order


def dominates(a: Metrics, b: Metrics, objectives: Objectives) -> bool:
    """``a`` is at least as good as ``b`` on every ranked objective (better or tied) and better on one."""
    strictly = False
    for objective in objectives.ranked:
        decided = compare_on(a.get(objective.key), b.get(objective.key), objective.higher_is_better)
        if decided > 0:
            return False
        strictly = strictly or decided < 0
    return strictly


def pareto_frontier(candidates: Sequence[Metrics | None], objectives: Objectives) -> list[int]:
    """Indices (in proposal order) of the candidates on the Pareto frontier of those meeting all goals."""
    eligible = [i for i, m in enumerate(candidates) if m is not None and meets_goals(m, objectives)]
    frontier = []
    for i in eligible:
        a = candidates[i]
        assert a is not None
        if not any(dominates(candidates[j] or {}, a, objectives) for j in eligible if j != i):
            frontier.append(i)
    return frontier


def record_metrics(record: Mapping[str, Any]) -> dict[str, MetricValue] | None:
    """The typed metrics of a footprint candidate record, or None when it has none to rank (failed,
    invalid, or not evaluated)."""
    metrics = record.get("metrics")
    if not metrics or record.get("status") in ("failed", "invalid"):
        return None
    return {key: MetricValue.from_json(value) for key, value in metrics.items()}
