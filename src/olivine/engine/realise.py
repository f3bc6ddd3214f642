"""Realising one candidate: run its chain through the cache, evaluate it (skipping the timed metrics of
one that already failed a goal), and say what came of it. The same code runs in the engine's process
(serial search) and in a Ray task (spread search, :mod:`olivine.engine.ray_executor`)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from olivine.engine.candidates import Candidate, candidate_id
from olivine.engine.chain import ChainRunner
from olivine.engine.events import EvaluationFinished
from olivine.engine.phase import Phases
from olivine.errors import ConfigError, EvaluationError, PassRunError, WorkflowCancelledError
from olivine.evaluate.results import MetricValue
from olivine.search.ranking import Objectives, meets_goals
from olivine.search.strategy import Proposal

if TYPE_CHECKING:
    from olivine.engine.evaluation import CachedEvaluator


def check_stop(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise WorkflowCancelledError("the workflow was cancelled")


@dataclass
class CandidateWork:
    """What realising a candidate needs. With search (``searching``), a failing candidate is recorded as
    failed; without search, its error ends the workflow (as in Olive)."""

    workflow_id: str
    runner: ChainRunner
    evaluator: CachedEvaluator | None
    objectives: Objectives
    phases: Phases
    stop: threading.Event | None
    searching: bool
    # Only the untimed part: the pass chain and the untimed metrics (the first phase of the local pool,
    # :mod:`olivine.engine.pool_executor`; its second phase realises the candidate again, from the cache,
    # with nothing else running, and times it there).
    untimed_only: bool = False

    def realise(self, proposal: Proposal, total: int | None) -> Candidate:
        candidate = Candidate(
            id=candidate_id(proposal.number),
            index=proposal.number,
            chain=proposal.chain if proposal.steps is not None else proposal.parent,
            point=proposal.described,
        )
        where = f"candidate {proposal.number}/{total if total is not None else '?'}: "
        if proposal.steps is None:
            if not self.searching:
                raise ConfigError(proposal.invalid_reason or "invalid pass configuration")
            candidate.status, candidate.error = "invalid", proposal.invalid_reason
            return candidate
        try:
            realised = self.runner.realise(proposal.chain, label=where)
        except PassRunError as exc:
            if not self.searching:
                raise
            candidate.status, candidate.error = "failed", str(exc)
            return candidate
        candidate.model, candidate.model_id, candidate.runs = realised.model, realised.model_id, realised.runs
        if self.evaluator is None:
            return candidate
        check_stop(self.stop)
        time_it = self.time_it if self.searching else None
        if self.untimed_only:
            time_it = self._untimed_only
        try:
            evaluation = self.evaluator.evaluate(
                realised.model_id,
                realised.model,
                candidate.label,
                time_it=time_it,
                progress=self.phases.reporter(f"{where}evaluating"),
            )
        except EvaluationError as exc:
            if not self.searching:
                raise
            candidate.status, candidate.error = "failed", str(exc)
            return candidate
        for path in evaluation.record_paths:
            self.phases.emit(
                EvaluationFinished(
                    self.workflow_id, realised.model_id, path, evaluation.metrics_json, evaluation.cached
                )
            )
        candidate.metrics = evaluation.metrics
        candidate.meets_goals = meets_goals(evaluation.metrics, self.objectives)
        candidate.timed_span = evaluation.timed_span
        if evaluation.timed_skipped and not self.untimed_only:
            candidate.status = "pruned"
        return candidate

    @staticmethod
    def _untimed_only(untimed: Mapping[str, MetricValue]) -> bool:
        return False

    def time_it(self, untimed: Mapping[str, MetricValue]) -> bool:
        """Time a candidate only while it can still meet every goal (else it cannot be on the frontier)."""
        return meets_goals(untimed, self.objectives, partial=True)
