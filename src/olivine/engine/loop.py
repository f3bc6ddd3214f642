"""The candidate loop: the search walk proposes, the engine realises each candidate through the cache,
evaluates it (skipping the timed metrics of one that already failed a goal), records it, and tells the
walk. Progress goes to the log (one line per candidate) and to the listener (events)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from olivine.engine.candidates import Candidate, candidate_id
from olivine.engine.chain import ChainRunner
from olivine.engine.evaluation import CachedEvaluator
from olivine.engine.events import CandidateFinished, CandidateStarted, EvaluationFinished
from olivine.engine.phase import Phases
from olivine.errors import ConfigError, EvaluationError, PassRunError, WorkflowCancelledError
from olivine.evaluate.results import MetricValue
from olivine.search.ranking import Objectives, best_index, meets_goals
from olivine.search.strategy import Proposal, SearchWalk

logger = logging.getLogger("olivine.engine")


def check_stop(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise WorkflowCancelledError("the workflow was cancelled")


class CandidateLoop:
    """Realises every proposal of ``walk``. With search, a failing candidate is recorded and the search
    goes on; without search, a failure ends the workflow (as in Olive)."""

    def __init__(
        self,
        workflow_id: str,
        walk: SearchWalk,
        runner: ChainRunner,
        evaluator: CachedEvaluator | None,
        objectives: Objectives,
        phases: Phases,
        stop: threading.Event | None,
    ) -> None:
        self.workflow_id = workflow_id
        self.walk = walk
        self.runner = runner
        self.evaluator = evaluator
        self.objectives = objectives
        self.phases = phases
        self.stop = stop
        self.searching = walk.strategy is not None
        self.candidates: list[Candidate] = []

    def run(self) -> list[Candidate]:
        total = self.walk.total
        for proposal in self.walk:
            check_stop(self.stop)
            self.phases.emit(CandidateStarted(self.workflow_id, proposal.number, total, proposal.described))
            candidate = self._realise(proposal, total)
            self.candidates.append(candidate)
            metrics = candidate.rankable if self.evaluator is not None else None
            self.walk.tell(proposal, metrics, pruned=candidate.status == "pruned")
            best = self.best()
            self._report(candidate, total, best)
            self.phases.emit(
                CandidateFinished(
                    self.workflow_id,
                    proposal.number,
                    total,
                    candidate.record(),
                    best.id if best else None,
                    best.metrics_json() or {} if best else {},
                )
            )
        return self.candidates

    def best(self) -> Candidate | None:
        if not self.candidates:
            return None
        if self.evaluator is None:  # Olive without an evaluator: the last model of the flow
            done = [c for c in self.candidates if c.status == "evaluated"]
            return done[-1] if done else None
        index = best_index([c.rankable for c in self.candidates], self.objectives)
        return None if index is None else self.candidates[index]

    def _realise(self, proposal: Proposal, total: int | None) -> Candidate:
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
        try:
            evaluation = self.evaluator.evaluate(
                realised.model_id,
                realised.model,
                candidate.label,
                time_it=self._time_it if self.searching else None,
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
        if evaluation.timed_skipped:
            candidate.status = "pruned"
        return candidate

    def _time_it(self, untimed: dict[str, MetricValue] | Any) -> bool:
        """Time a candidate only while it can still meet every goal (else it cannot be on the frontier)."""
        return meets_goals(untimed, self.objectives, partial=True)

    def _report(self, candidate: Candidate, total: int | None, best: Candidate | None) -> None:
        of = f" of {total}" if total is not None else ""
        point = ", ".join(f"{k}={v}" for k, v in (candidate.point or {}).items()) or "-"
        if candidate.status in ("failed", "invalid"):
            outcome = f"{candidate.status}: {candidate.error}"
        else:
            outcome = format_metrics(candidate.metrics) + (
                " (pruned: a goal is missed)" if candidate.status == "pruned" else ""
            )
        logger.info(
            "candidate %d%s [%s] %s -> %s; best so far: %s",
            candidate.index,
            of,
            ">".join(s.name for s in candidate.chain) or "-",
            point,
            outcome,
            best.id if best else "-",
        )


def format_metrics(metrics: dict[str, MetricValue] | None, fmt: Callable[[float], str] | None = None) -> str:
    """``key value[±spread]`` pairs, e.g. ``latency-avg 1.234±0.021, size-bytes 12,345``."""
    if not metrics:
        return "no metrics"

    def number(v: float) -> str:
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"

    render = fmt or number
    return ", ".join(
        f"{k} {render(v.value)}" + (f"±{render(v.spread)}" if v.spread is not None else "")
        for k, v in metrics.items()
    )
