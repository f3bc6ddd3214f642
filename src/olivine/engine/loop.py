"""The candidate loop: the search walk proposes (in batches), an executor realises each candidate through
the cache (:mod:`olivine.engine.executor`: in this process, or as Ray tasks), and the loop records the
candidates and tells the walk in proposal order, never in completion order. Progress goes to the log (one
line per candidate) and to the listener (events)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from olivine.engine.candidates import Candidate
from olivine.engine.chain import ChainRunner
from olivine.engine.evaluation import CachedEvaluator
from olivine.engine.events import CandidateFinished, CandidateStarted
from olivine.engine.executor import CandidateExecutor, SerialExecutor, batch_width
from olivine.engine.phase import Phases
from olivine.engine.realise import CandidateWork, check_stop
from olivine.evaluate.results import MetricValue
from olivine.search.ranking import Objectives, best_index
from olivine.search.strategy import SearchWalk

__all__ = ["CandidateLoop", "check_stop", "format_metrics"]

logger = logging.getLogger("olivine.engine")


class CandidateLoop:
    """Realises every proposal of ``walk``. With search, a failing candidate is recorded and the search
    goes on; without search, a failure ends the workflow (as in Olive). ``executor`` spreads a search's
    candidates (default: one at a time, here); without search it is not used."""

    def __init__(
        self,
        workflow_id: str,
        walk: SearchWalk,
        runner: ChainRunner,
        evaluator: CachedEvaluator | None,
        objectives: Objectives,
        phases: Phases,
        stop: threading.Event | None,
        executor: CandidateExecutor | None = None,
    ) -> None:
        self.workflow_id = workflow_id
        self.walk = walk
        self.runner = runner
        self.evaluator = evaluator
        self.objectives = objectives
        self.phases = phases
        self.stop = stop
        self.searching = walk.strategy is not None
        self.executor: CandidateExecutor = (
            executor if executor is not None and self.searching else SerialExecutor()
        )
        self.work = CandidateWork(workflow_id, runner, evaluator, objectives, phases, stop, self.searching)
        self.candidates: list[Candidate] = []

    def run(self) -> list[Candidate]:
        total = self.walk.total
        try:
            for batch in self.walk.batches(batch_width(self.executor, self.walk)):
                check_stop(self.stop)
                for proposal in batch:
                    self.phases.emit(
                        CandidateStarted(self.workflow_id, proposal.number, total, proposal.described)
                    )
                results = self.executor.realise(batch, total, self.work)
                try:
                    for proposal, candidate in zip(batch, results, strict=False):
                        if self.walk.stopped:
                            break  # proposed ahead of a stop: the serial search would not have run it
                        self._record(candidate, total)
                        metrics = candidate.rankable if self.evaluator is not None else None
                        self.walk.tell(proposal, metrics, pruned=candidate.status == "pruned")
                finally:
                    results.close()  # drops the batch's work not consumed (after a stop)
        finally:
            self.executor.close()
        return self.candidates

    def _record(self, candidate: Candidate, total: int | None) -> None:
        self.candidates.append(candidate)
        best = self.best()
        self._report(candidate, total, best)
        self.phases.emit(
            CandidateFinished(
                self.workflow_id,
                candidate.index,
                total,
                candidate.record(),
                best.id if best else None,
                best.metrics_json() or {} if best else {},
            )
        )

    def best(self) -> Candidate | None:
        if not self.candidates:
            return None
        if self.evaluator is None:  # Olive without an evaluator: the last model of the flow
            done = [c for c in self.candidates if c.status == "evaluated"]
            return done[-1] if done else None
        index = best_index([c.rankable for c in self.candidates], self.objectives)
        return None if index is None else self.candidates[index]

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
