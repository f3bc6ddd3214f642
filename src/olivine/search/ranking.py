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
- **Playoff** (why: each candidate's latency is measured once, at its own time, and on a shared machine
  the drift between those times is larger than the spread within one measurement, so two equal models
  could be tied in one run and not in the next, and the best model flipped between runs of the same
  config). After the walk, :func:`playoff_finalists` picks, among the candidates the best would be
  chosen from, the leader on the first *timed* objective (the first whose values carry ``rounds``) and
  every candidate tied with it or within :data:`PLAYOFF_MARGIN` of it (at most :data:`PLAYOFF_MAX`,
  the closest first). The engine re-times those finalists head to head, in interleaved rounds, with
  nothing else running (:mod:`olivine.engine.playoff`). The best is then chosen among the finalists
  only, with their playoff measurements in place of the walk's on every timed objective and the same
  tie rule; the frontier and the ranking order compare two finalists with their playoff measurements
  too (any other pair with the walk's). Candidates' own records keep the walk's measurements.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from olivine.config.evaluators import EvaluatorConfig
from olivine.evaluate.results import MetricValue, result_key

Metrics = Mapping[str, MetricValue]
#: Playoff measurements: candidate index -> its re-timed metrics (the timed objectives).
Playoff = Mapping[int, Metrics]

#: A candidate within this fraction of the leader's value on the first timed objective goes to the
#: playoff (as does one tied with the leader). On the shared 2-vCPU build machine one quiet walk timed
#: two int8 MiniLM models 12.8 and 14.2 ms that another timed 14.26 ms each, and at load 6-8 a walk timed
#: two models 7.5 and 14.9 ms that a quiet walk timed 11.03 and 11.12 ms. 20% covered the quiet case,
#: but the fair search bench's serial run (load ~2.5) timed c0013 12.27 ms against c0009's 8.87 (38%)
#: where three other walks put them within 6%, so the best flipped: 50% covers that; the closest
#: :data:`PLAYOFF_MAX` still bound the cost.
PLAYOFF_MARGIN = 0.50
#: At most this many finalists (the leader and the closest others): each holds an open session while
#: the playoff runs, and each adds its timed runs to the search's wall time.
PLAYOFF_MAX = 4


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


def _pool(candidates: Sequence[Metrics | None], objectives: Objectives) -> list[int]:
    """The candidates the best is chosen from: those that meet the goals (all ranked ones when none does)."""
    pool = [i for i, m in enumerate(candidates) if m is not None]
    meeting = [i for i in pool if meets_goals(candidates[i] or {}, objectives)]
    return meeting or pool


def _narrow(
    pool: list[int], candidates: Sequence[Metrics | None], objective: Objective
) -> tuple[int, list[int]]:
    """The leader of ``pool`` on ``objective`` and the candidates tied with it (the leader included)."""
    leader = _leader(pool, candidates, objective)
    best = (candidates[leader] or {}).get(objective.key)
    return leader, [
        i
        for i in pool
        if i == leader
        or compare_on((candidates[i] or {}).get(objective.key), best, objective.higher_is_better) == 0
    ]


def _with_playoff(candidates: Sequence[Metrics | None], playoff: Playoff) -> list[Metrics | None]:
    """``candidates`` with each finalist's playoff measurements in place of its walk measurements."""
    return [{**m, **playoff[i]} if m is not None and i in playoff else m for i, m in enumerate(candidates)]


def best_index(
    candidates: Sequence[Metrics | None], objectives: Objectives, playoff: Playoff | None = None
) -> int | None:
    """Index of the best candidate (None entries, e.g. failed candidates, are skipped): among those that
    meet the goals (all, when none does), each priority in turn keeps the candidates tied with the one
    that measured best on it; the earliest of the last group wins. With ``playoff`` (index -> re-timed
    metrics of the finalists), the best is chosen among the finalists, with their playoff measurements.
    See the module docstring."""
    pool = _pool(candidates, objectives)
    if not pool:
        return None
    finalists = [i for i in pool if i in playoff] if playoff else []
    if finalists:
        pool, candidates = finalists, _with_playoff(candidates, playoff or {})
    for objective in objectives.ranked:
        if len(pool) == 1:
            break
        _, pool = _narrow(pool, candidates, objective)
    return pool[0]


def _timed(value: MetricValue | None) -> bool:
    return value is not None and value.rounds is not None


def playoff_finalists(
    candidates: Sequence[Metrics | None],
    objectives: Objectives,
    *,
    margin: float | None = None,
    limit: int | None = None,
) -> list[int]:
    """Indices (in proposal order) of the candidates to re-time head to head before the best is chosen,
    or [] when no playoff is needed (fewer than two finalists, or no timed objective decides).

    The pool is :func:`best_index`'s; the untimed objectives before the first timed one narrow it as
    there. On the first timed objective (its leader's value carries ``rounds``) the finalists are the
    leader and every candidate tied with it or within ``margin`` (a fraction of the leader's value) of
    it, at most ``limit`` of them, the closest to the leader first (defaults: :data:`PLAYOFF_MARGIN`,
    :data:`PLAYOFF_MAX`, read when called)."""
    margin = PLAYOFF_MARGIN if margin is None else margin
    limit = PLAYOFF_MAX if limit is None else limit
    pool = _pool(candidates, objectives)
    for objective in objectives.ranked:
        if len(pool) < 2:
            return []
        leader, tied_with = _narrow(pool, candidates, objective)
        lead = (candidates[leader] or {}).get(objective.key)
        if not _timed(lead):
            pool = tied_with
            continue
        return _near_leader(pool, candidates, objective, leader, tied_with, margin, limit)
    return []


def _near_leader(
    pool: list[int],
    candidates: Sequence[Metrics | None],
    objective: Objective,
    leader: int,
    tied_with: list[int],
    margin: float,
    limit: int,
) -> list[int]:
    """The leader and the candidates of ``pool`` tied with it or within ``margin`` of its value on
    ``objective`` (at most ``limit``, the closest first), in proposal order; [] when alone."""
    lead = (candidates[leader] or {})[objective.key]
    sign = -1.0 if objective.higher_is_better else 1.0
    gaps: dict[int, float] = {}
    for i in pool:
        value = (candidates[i] or {}).get(objective.key)
        if i != leader and value is not None and _usable(value):
            gap = sign * (value.value - lead.value)
            if i in tied_with or gap <= abs(lead.value) * margin:
                gaps[i] = gap
    near = sorted(gaps, key=lambda i: (gaps[i], i))[: max(0, limit - 1)]
    return sorted([leader, *near]) if near else []


def _subset(playoff: Playoff | None, indices: Sequence[int]) -> dict[int, Metrics] | None:
    """``playoff`` re-indexed to positions in ``indices`` (None without a playoff)."""
    if not playoff:
        return None
    return {pos: playoff[i] for pos, i in enumerate(indices) if i in playoff}


def ranking_order(
    candidates: Sequence[Metrics | None], objectives: Objectives, playoff: Playoff | None = None
) -> list[int]:
    """Indices of the non-None candidates, best first (repeatedly the best of the rest: ties keep
    proposal order; with ``playoff``, the finalists come first, in their playoff order)."""
    remaining = [i for i, m in enumerate(candidates) if m is not None]
    order: list[int] = []
    while remaining:
        pick = best_index([candidates[i] for i in remaining], objectives, _subset(playoff, remaining))
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


def pareto_frontier(
    candidates: Sequence[Metrics | None], objectives: Objectives, playoff: Playoff | None = None
) -> list[int]:
    """Indices (in proposal order) of the candidates on the Pareto frontier of those meeting all goals;
    with ``playoff``, two finalists are compared with their playoff measurements."""
    eligible = [i for i, m in enumerate(candidates) if m is not None and meets_goals(m, objectives)]
    replayed = _with_playoff(candidates, playoff) if playoff else candidates

    def pair(i: int, j: int) -> tuple[Metrics, Metrics]:
        source = replayed if playoff and i in playoff and j in playoff else candidates
        return source[i] or {}, source[j] or {}

    frontier = []
    for i in eligible:
        if not any(dominates(*pair(j, i), objectives) for j in eligible if j != i):
            frontier.append(i)
    return frontier


def record_metrics(record: Mapping[str, Any]) -> dict[str, MetricValue] | None:
    """The typed metrics of a footprint candidate record, or None when it has none to rank (failed,
    invalid, or not evaluated)."""
    metrics = record.get("metrics")
    if not metrics or record.get("status") in ("failed", "invalid"):
        return None
    return {key: MetricValue.from_json(value) for key, value in metrics.items()}
