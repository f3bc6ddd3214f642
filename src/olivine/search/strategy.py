"""The walk over the search space in Olive's execution orders; proposes candidates, hears their results.

- ``joint``: one space of every pass slot; the sampler proposes whole chains. ``max_iter`` (at most that
  many candidates), ``max_time`` (seconds; checked after each candidate) and ``stop_when_goals_met``
  stop it early.
- ``pass-by-pass``: one space per slot, walked depth first as Olive does: every point of the first slot is
  proposed (each a chain of one pass), then, best first (Olive keeps only the results that meet the goals
  when any does), each result becomes the parent of the next slot's points, and so on. Every level gets a
  fresh sampler with the same settings. Candidates of inner levels are prefixes of full chains.
- no search: one candidate, the whole chain (and, with ``evaluate_intermediate_models``, each prefix of it
  first).

The engine iterates :class:`SearchWalk` and calls :meth:`SearchWalk.tell` after each proposal.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from olivine.config.engine import SearchStrategyConfig
from olivine.model.accelerator import Accelerator
from olivine.search.ranking import Metrics, Objectives, meets_goals, ranking_order
from olivine.search.samplers.base import Sampler, SamplerSettings
from olivine.search.space import PassSlot, Point, ResolvedPass, SearchSpace

logger = logging.getLogger("olivine.search")


@dataclass(frozen=True)
class Proposal:
    """One candidate to realise: the steps before it (``parent``) and its own point's steps."""

    number: int  # 1-based, in proposal order
    point: Point
    space: SearchSpace
    parent: tuple[ResolvedPass, ...]
    steps: tuple[ResolvedPass, ...] | None  # None when invalid
    invalid_reason: str | None
    described: dict[str, Any] = field(default_factory=dict)  # the searched dimensions

    @property
    def chain(self) -> tuple[ResolvedPass, ...]:
        return self.parent + (self.steps or ())


@dataclass(frozen=True)
class Feedback:
    metrics: Metrics | None  # None: failed or invalid
    pruned: bool = False


class SearchWalk:
    """Iterate proposals; call :meth:`tell` with each one's result before asking for the next.

    Args:
        slots: the workflow's pass slots (see :mod:`olivine.search.space`).
        strategy: the search strategy, or None for no search.
        objectives: the ranked objectives and goals (for stop_when_goals_met, pass-by-pass order, TPE).
        accelerator: what invalid combinations are judged against.
        sampler_cls: the sampler class (from the sampler registry).
        evaluate_intermediate: without search, also propose each prefix of the chain.
    """

    def __init__(
        self,
        slots: Sequence[PassSlot],
        strategy: SearchStrategyConfig | None,
        objectives: Objectives,
        accelerator: Accelerator,
        sampler_cls: type[Sampler] | None = None,
        *,
        evaluate_intermediate: bool = False,
    ) -> None:
        self.slots = tuple(slots)
        self.strategy = strategy
        self.objectives = objectives
        self.accelerator = accelerator
        self.sampler_cls = sampler_cls
        self.evaluate_intermediate = evaluate_intermediate
        self.count = 0
        self._feedback: dict[int, Feedback] = {}
        if strategy is not None and strategy.execution_order == "pass-by-pass":
            ignored = [k for k in ("stop_when_goals_met", "max_iter", "max_time") if getattr(strategy, k)]
            if ignored:
                logger.info("%s apply to the joint order only (as in Olive); ignored", ", ".join(ignored))

    @property
    def settings(self) -> SamplerSettings:
        s = self.strategy
        assert s is not None
        return SamplerSettings(
            max_samples=s.max_samples, seed=s.seed, multivariate=s.multivariate, group=s.group
        )

    @property
    def space_size(self) -> int | None:
        """Points of the joint space (the product of the slots' sizes)."""
        return len(SearchSpace(self.slots)) if self.slots else 0

    @property
    def total(self) -> int | None:
        """How many candidates the walk proposes at most."""
        if self.strategy is None:
            return len(self.slots) if self.evaluate_intermediate else min(1, len(self.slots))
        cap = self.strategy.max_samples
        if self.strategy.execution_order == "joint":
            size = len(SearchSpace(self.slots))
            size = min(size, cap) if cap else size
            return min(size, self.strategy.max_iter) if self.strategy.max_iter else size
        total, width = 0, 1
        for slot in self.slots:
            width *= min(slot.size, cap) if cap else slot.size
            total += width
        return total

    def tell(self, proposal: Proposal, metrics: Metrics | None, *, pruned: bool = False) -> None:
        self._feedback[proposal.number] = Feedback(metrics, pruned)

    def __iter__(self) -> Iterator[Proposal]:
        if not self.slots:
            return iter(())
        if self.strategy is None:
            return self._fixed()
        if self.strategy.execution_order == "joint":
            return self._joint()
        return self._level(0, (), {})

    def _propose(
        self,
        space: SearchSpace,
        point: Point,
        parent: tuple[ResolvedPass, ...],
        parent_point: dict[str, Any] | None = None,
    ) -> Proposal:
        self.count += 1
        steps = space.steps(point, self.accelerator)
        described = {**(parent_point or {}), **space.describe(point)}
        if isinstance(steps, str):
            logger.info("candidate %d is invalid, skipped: %s", self.count, steps)
            return Proposal(self.count, point, space, parent, None, steps, described)
        return Proposal(self.count, point, space, parent, tuple(steps), None, described)

    def _fixed(self) -> Iterator[Proposal]:
        n = len(self.slots)
        for length in range(1, n + 1) if self.evaluate_intermediate else (n,):
            prefix = SearchSpace(self.slots[:length])
            proposal = self._propose(prefix, prefix.point(0), ())
            yield proposal
            self._feedback.pop(proposal.number, None)

    def _sampler(self, space: SearchSpace) -> Sampler:
        assert self.sampler_cls is not None
        return self.sampler_cls(space, self.settings, self.objectives.directions)

    def _joint(self) -> Iterator[Proposal]:
        strategy = self.strategy
        assert strategy is not None
        space = SearchSpace(self.slots)
        sampler = self._sampler(space)
        started = time.monotonic()
        while (point := sampler.suggest()) is not None:
            proposal = self._propose(space, point, ())
            yield proposal
            feedback = self._feedback.pop(proposal.number, Feedback(None))
            sampler.tell(point, self._values(feedback), pruned=feedback.pruned)
            met = feedback.metrics is not None and not feedback.pruned
            if strategy.stop_when_goals_met and met and meets_goals(feedback.metrics or {}, self.objectives):
                logger.info("candidate %d meets every goal; stopping (stop_when_goals_met)", proposal.number)
                return
            if strategy.max_iter and self.count >= strategy.max_iter:
                logger.info("max_iter (%d) reached; stopping the search", strategy.max_iter)
                return
            if strategy.max_time and time.monotonic() - started > strategy.max_time:
                logger.info("max_time (%ss) reached; stopping the search", strategy.max_time)
                return

    def _level(
        self, depth: int, parent: tuple[ResolvedPass, ...], parent_point: dict[str, Any]
    ) -> Iterator[Proposal]:
        space = SearchSpace(self.slots[depth : depth + 1])
        sampler = self._sampler(space)
        results: list[tuple[Proposal, Metrics | None]] = []
        while (point := sampler.suggest()) is not None:
            proposal = self._propose(space, point, parent, parent_point)
            yield proposal
            feedback = self._feedback.pop(proposal.number, Feedback(None))
            sampler.tell(point, self._values(feedback), pruned=feedback.pruned)
            results.append((proposal, feedback.metrics))
        if depth + 1 >= len(self.slots):
            return
        usable = [(p, m) for p, m in results if m is not None and p.steps is not None]
        meeting = [(p, m) for p, m in usable if meets_goals(m, self.objectives)]
        chosen = meeting or usable
        for index in ranking_order([m for _, m in chosen], self.objectives):
            proposal = chosen[index][0]
            yield from self._level(depth + 1, proposal.chain, proposal.described)

    def _values(self, feedback: Feedback) -> list[float] | None:
        if feedback.metrics is None:
            return None
        return self.objectives.values(feedback.metrics)
