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

The engine asks :meth:`SearchWalk.batches` for proposals and calls :meth:`SearchWalk.tell` with each
one's result, in proposal order, before asking for the next batch. A batch holds the proposals that can be
made without waiting for feedback (up to ``width``; one at a time for a sampler that learns, e.g. TPE), so
a spread search proposes exactly the candidates of the serial one. After a :meth:`tell` that stops the
walk (``stop_when_goals_met``, ``max_time``), :attr:`SearchWalk.stopped` is true and the batch's later
proposals must not be recorded. Iterating the walk is ``batches(1)``.
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
        self.stopped = False  # set by a tell() that ends a joint search early
        self._feedback: dict[int, Feedback] = {}
        self._samplers: dict[int, tuple[Sampler, Point]] = {}  # proposal number -> who to tell
        self._started = time.monotonic()
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
        """Hear ``proposal``'s result (in proposal order); may stop a joint search (:attr:`stopped`)."""
        feedback = Feedback(metrics, pruned)
        self._feedback[proposal.number] = feedback
        told = self._samplers.pop(proposal.number, None)
        if told is not None:
            sampler, point = told
            sampler.tell(point, self._values(feedback), pruned=pruned)
        strategy = self.strategy
        if strategy is None or strategy.execution_order != "joint" or self.stopped:
            return
        met = metrics is not None and not pruned
        if strategy.stop_when_goals_met and met and meets_goals(metrics or {}, self.objectives):
            logger.info("candidate %d meets every goal; stopping (stop_when_goals_met)", proposal.number)
            self.stopped = True
        elif strategy.max_time and time.monotonic() - self._started > strategy.max_time:
            logger.info("max_time (%ss) reached; stopping the search", strategy.max_time)
            self.stopped = True

    def __iter__(self) -> Iterator[Proposal]:
        for batch in self.batches(1):
            yield from batch

    def batches(self, width: int) -> Iterator[list[Proposal]]:
        """Lists of proposals (at most ``width`` each); tell every proposal of one batch, in order
        (or stop telling once :attr:`stopped` is true), before asking for the next."""
        if not self.slots:
            return iter(())
        if self.strategy is None:
            return self._fixed()
        if self.strategy.execution_order == "joint":
            return self._joint(max(1, width))
        return self._level(0, (), {}, max(1, width))

    def _propose(
        self,
        space: SearchSpace,
        point: Point,
        parent: tuple[ResolvedPass, ...],
        parent_point: dict[str, Any] | None = None,
        sampler: Sampler | None = None,
    ) -> Proposal:
        self.count += 1
        if sampler is not None:
            self._samplers[self.count] = (sampler, point)
        steps = space.steps(point, self.accelerator)
        described = {**(parent_point or {}), **space.describe(point)}
        if isinstance(steps, str):
            logger.debug("candidate %d is invalid, skipped: %s", self.count, steps)
            return Proposal(self.count, point, space, parent, None, steps, described)
        return Proposal(self.count, point, space, parent, tuple(steps), None, described)

    def _fixed(self) -> Iterator[list[Proposal]]:
        n = len(self.slots)
        for length in range(1, n + 1) if self.evaluate_intermediate else (n,):
            prefix = SearchSpace(self.slots[:length])
            proposal = self._propose(prefix, prefix.point(0), ())
            yield [proposal]
            self._feedback.pop(proposal.number, None)

    def _sampler(self, space: SearchSpace) -> Sampler:
        assert self.sampler_cls is not None
        return self.sampler_cls(space, self.settings, self.objectives.directions)

    def _batch(
        self,
        sampler: Sampler,
        width: int,
        space: SearchSpace,
        parent: tuple[ResolvedPass, ...],
        parent_point: dict[str, Any] | None,
        cap: int | None = None,
    ) -> list[Proposal]:
        """Up to ``width`` proposals that need no feedback first (one for a sampler that learns)."""
        batch: list[Proposal] = []
        size = 1 if sampler.learns else width
        while len(batch) < size and (cap is None or self.count < cap):
            point = sampler.suggest()
            if point is None:
                break
            batch.append(self._propose(space, point, parent, parent_point, sampler))
        return batch

    def _joint(self, width: int) -> Iterator[list[Proposal]]:
        strategy = self.strategy
        assert strategy is not None
        space = SearchSpace(self.slots)
        sampler = self._sampler(space)
        self._started = time.monotonic()
        while not self.stopped:
            batch = self._batch(sampler, width, space, (), None, strategy.max_iter)
            if not batch:
                if strategy.max_iter and self.count >= strategy.max_iter:
                    logger.info("max_iter (%d) reached; stopping the search", strategy.max_iter)
                return
            yield batch
            for proposal in batch:
                self._feedback.pop(proposal.number, None)

    def _level(
        self, depth: int, parent: tuple[ResolvedPass, ...], parent_point: dict[str, Any], width: int
    ) -> Iterator[list[Proposal]]:
        space = SearchSpace(self.slots[depth : depth + 1])
        sampler = self._sampler(space)
        results: list[tuple[Proposal, Metrics | None]] = []
        while batch := self._batch(sampler, width, space, parent, parent_point):
            yield batch
            for proposal in batch:
                feedback = self._feedback.pop(proposal.number, Feedback(None))
                results.append((proposal, feedback.metrics))
        if depth + 1 >= len(self.slots):
            return
        usable = [(p, m) for p, m in results if m is not None and p.steps is not None]
        meeting = [(p, m) for p, m in usable if meets_goals(m, self.objectives)]
        chosen = meeting or usable
        for index in ranking_order([m for _, m in chosen], self.objectives):
            proposal = chosen[index][0]
            yield from self._level(depth + 1, proposal.chain, proposal.described, width)

    def _values(self, feedback: Feedback) -> list[float] | None:
        if feedback.metrics is None:
            return None
        return self.objectives.values(feedback.metrics)
