"""A search spread over a Ray cluster: each candidate (its pass runs and its evaluation) is one Ray task.

- The tasks are :mod:`olivine.engine.task_work`'s functions as Ray remote functions. Each reserves
  ``num_cpus`` in Ray (so Ray runs no more tasks on a node than it has CPUs) and, inside the task, claims
  ``ceil(num_cpus)`` CPUs of its own and pins every thread of its worker process to them
  (:mod:`olivine.engine.affinity`): a Ray reservation is only a count, and onnxruntime sessions with
  default threads would otherwise spread over every core, so a timed latency run would share CPUs with
  the other tasks' pass runs and evaluations.
- Results land in the one cache, the job's ``cache_dir``: tasks open it by path, so every node must see
  it at the same path. On one machine it is; on several nodes it must be a shared filesystem (NFS, EFS,
  Azure Files, a KubeRay volume) mounted at the same path everywhere. A task checks that it sees the
  folder the engine marked and fails with a clear error otherwise (no silent node-local cache).
  Concurrent writers are safe: runs are committed by an atomic rename (:mod:`olivine.engine.cache`).
- A search with timed metrics (latency, throughput) realises each batch in two phases, as the local pool
  does (:mod:`olivine.engine.pool_executor`):

  1. **Untimed, spread.** Up to ``workers`` tasks run at once, each a candidate's pass chain and its
     untimed metrics (accuracy, custom, size); the walk proposes further ahead (``_QUEUE_FACTOR`` per
     slot) and a slot that frees takes the next proposal. A barrier: every task of the batch has ended
     (and every warm-up task).
  2. **Timed, alone.** In proposal order, one task per candidate realises it again, as the serial search
     does: chain and untimed metrics from the cache, then the timed metrics, on ``ceil(num_cpus)``
     pinned CPUs with no other task of the search running anywhere on the cluster. (Timed next to each
     other, pinned to CPUs of their own, candidates' latencies were up to 26% slower on a 2-vCPU VM:
     the CPUs share the cache and memory bandwidth.) A candidate that fails a goal on its untimed
     metrics is not timed (pruned, as in the serial search): the engine records it from the cache.
     These tasks go wherever Ray places them (a task process of the search, warm); on a cluster of
     unlike nodes, the candidates' timed runs may land on different kinds of node.

  A search without timed metrics runs each candidate whole in one task, up to ``workers`` at once.
  Either way candidates come back in proposal order (the loop tells the walk in that order), so the
  same seed gives the same candidates and the same best model as the serial search. Each candidate's
  ``ran_on`` says where its task ran, and, under ``timed``, where its timing task ran. The chain prefix
  that a batch's candidates share (e.g. conversion + optimization before each quantization) runs once,
  as its own task, before them, on every task slot's CPUs that fit on one node (nothing else of the
  search runs then).
- The input model is evaluated in a task too (:meth:`RayExecutor.evaluate_input`), on one slot's CPUs of
  its own. Meanwhile, with two slots or more, the steps every candidate shares (the search's fixed
  prefix, :func:`olivine.engine.executor.fixed_prefix`) run as a task on another slot, and the slots left
  warm their task processes up (imports, the search's runner and evaluator); when the input model's
  untimed metrics are done first, its slot warms up too. Its timed metrics then run in a task of their
  own once the prefix and the warm-ups have ended (alone, as a candidate's). With one slot (``workers``
  1, or a cluster with CPUs for one task now), the input model is evaluated whole, then the prefix
  runs. Ray reuses the task processes for the candidates, so their first candidates do not pay the
  imports again.

``ray`` is imported only when a spread search starts.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
from collections import deque
from collections.abc import Generator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from olivine.engine.candidates import Candidate
from olivine.engine.events import EngineEvent, PassStarted
from olivine.engine.executor import InputWork, SpreadSettings
from olivine.engine.realise import CandidateWork, check_stop
from olivine.engine.task_work import (
    TaskRecipe,
    TaskResult,
    candidate_task,
    chain_keys,
    chain_task,
    event_paths,
    input_task,
    lost_candidate,
    shared_prefix,
    warm_modules,
    warm_task,
)
from olivine.errors import EvaluationError, HostError, MissingDependencyError, OlivineError
from olivine.search.ranking import Objectives
from olivine.search.strategy import Proposal

if TYPE_CHECKING:
    from olivine.engine.chain import ChainRunner
    from olivine.engine.evaluation import CachedEvaluator, Evaluation
    from olivine.engine.phase import Phases

logger = logging.getLogger("olivine.engine")

_WAIT_S = 0.5  # how often the engine checks for a cancel while it waits for a task
_QUEUE_FACTOR = 8  # proposals asked for per task slot (see RayExecutor.__init__)
_NOTHING = "the Ray task returned nothing"


def _has_timed(evaluator: CachedEvaluator | None) -> bool:
    """Whether ``evaluator`` has timed metrics (latency, throughput)."""
    return evaluator is not None and any(part == "timed" for part, _ in evaluator.parts)


def _reachable(address: str) -> None:
    """Fail fast on a GCS address nothing listens on (``ray.init`` would retry for many minutes)."""
    host, _, port = address.rpartition(":")
    if address == "auto" or not port.isdigit():
        return
    try:
        socket.create_connection((host.removeprefix("ray://") or "127.0.0.1", int(port)), timeout=10).close()
    except OSError as exc:
        raise HostError(f"search over Ray: the Ray cluster at {address} is not reachable: {exc}") from exc


class RayExecutor:
    """Realises each batch's candidates as Ray tasks (see the module docstring)."""

    def __init__(self, settings: SpreadSettings, *, timed_apart: bool = True) -> None:
        """``timed_apart``: time the candidates in phase 2, alone (False: each task times its own
        candidate beside the other tasks, on CPUs of its own; for measuring what the barrier costs)."""
        self.settings = settings
        self.workers = max(1, settings.workers)
        self.timed_apart = timed_apart
        # The walk is asked for more proposals than run at once, so that a task slot freed early takes
        # the next candidate instead of waiting for the slowest of its group, and each batch ends in one
        # barrier and timed phase (the fewer, the less a slot idles at the end of phase 1). A stop
        # (stop_when_goals_met, max_time) may have done the untimed work of up to a batch of proposals
        # the serial search would not have run; their results are dropped.
        self.width = self.workers * _QUEUE_FACTOR
        self._ray: Any = None
        self._owns_ray = False
        self._recipe_ref: Any = None
        self._recipe: TaskRecipe | None = None
        self._objectives_known = False  # the recipe carries the search's objectives (after the input)
        self._done: set[str] = set()  # run keys known to be in the cache
        self._early: tuple[Any, list[str]] | None = None  # the fixed prefix's task (ref, run keys)
        self._warming: list[Any] = []  # warm-up tasks that may still run
        self._announced: set[Path] = set()  # cache paths named by events already re-emitted

    # -- connecting -----------------------------------------------------------------------------------
    def _connect(self) -> Any:
        if self._ray is not None:
            return self._ray
        try:
            import ray
        except ImportError as exc:
            raise MissingDependencyError(
                "a search spread over Ray needs Ray: pip install 'olivine[ray]'"
            ) from exc
        if not ray.is_initialized():
            address = self.settings.address or "auto"
            _reachable(address)
            # ray.init replaces the process's SIGTERM handler with sys.exit: a job's worker would then die
            # as "user code called sys.exit" instead of stopping after the running step. Keep ours.
            main = threading.current_thread() is threading.main_thread()
            sigterm = signal.getsignal(signal.SIGTERM) if main else None
            try:
                ray.init(
                    address=address,
                    namespace="olivine",
                    log_to_driver=False,
                    configure_logging=False,
                    include_dashboard=False,
                )
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise HostError(
                    f"search over Ray: cannot connect to the Ray cluster at {address}: {exc}"
                ) from exc
            finally:
                if main and sigterm is not None:
                    signal.signal(signal.SIGTERM, sigterm)
            self._owns_ray = True
        self._ray = ray
        return ray

    def _prepare(self, work: CandidateWork) -> None:
        self._prepare_parts(work.runner, work.evaluator, work.objectives)

    def _prepare_parts(
        self, runner: ChainRunner, evaluator: CachedEvaluator | None, objectives: Objectives | None
    ) -> None:
        """Connect and ship the search's recipe (once; again when its ``objectives`` become known)."""
        if self._recipe is not None:
            if objectives is not None and not self._objectives_known:
                self._recipe = replace(self._recipe, objectives=objectives)
                self._recipe_ref = self._ray.put(self._recipe)
                self._objectives_known = True
            return
        ray = self._connect()
        self._recipe = TaskRecipe.of_parts(runner, evaluator, objectives or Objectives())
        self._objectives_known = objectives is not None
        self._recipe_ref = ray.put(self._recipe)
        cpus = self.settings.num_cpus
        self._candidate = ray.remote(candidate_task).options(num_cpus=cpus, max_retries=1)
        self._input = ray.remote(input_task).options(num_cpus=cpus, max_retries=0)
        self._warm = ray.remote(warm_task).options(num_cpus=cpus, max_retries=0)
        self._early_chain = ray.remote(chain_task).options(num_cpus=cpus, max_retries=1)
        # Nothing else of this search runs while a shared prefix does: it may take every task slot's
        # CPUs that fit on one node (conversion and optimization run torch and onnxruntime threads).
        self._prefix_cpus = min(self.workers * self.settings.num_cpus, self._largest_node_cpus(ray))
        self._prefix_cpus = max(self._prefix_cpus, self.settings.num_cpus)
        self._chain = ray.remote(chain_task).options(num_cpus=self._prefix_cpus, max_retries=1)
        logger.info(
            "search over Ray: up to %d candidate(s) at once, %s CPU(s) each",
            self.workers,
            self.settings.num_cpus,
        )

    def _slots(self) -> int:
        """How many tasks of one slot's CPUs run at once: ``workers``, or fewer when the cluster has
        fewer CPUs now (then the input model's evaluation and the prefix run one after the other, and
        nothing warms up)."""
        try:
            total = float(self._ray.cluster_resources().get("CPU", 0))
        except Exception:  # an older or newer Ray's resource table: trust the settings
            return self.workers
        if total <= 0:
            return self.workers
        return max(1, min(self.workers, int(total // self.settings.num_cpus)))

    @staticmethod
    def _largest_node_cpus(ray: Any) -> float:
        try:
            return max(
                (float(node.get("Resources", {}).get("CPU", 0)) for node in ray.nodes() if node.get("Alive")),
                default=0.0,
            )
        except Exception:  # an older or newer Ray's node table: fall back to one slot's CPUs
            return 0.0

    # -- the input model -----------------------------------------------------------------------------
    def evaluate_input(self, work: InputWork) -> Evaluation:
        """Evaluate the input model in a task on one slot's CPUs; meanwhile run the fixed prefix on
        another slot and warm the slots left; its timed metrics then run alone (see the module
        docstring)."""
        self._prepare_parts(work.runner, work.evaluator, None)
        cpus = self.settings.num_cpus
        prefix = self._uncached(work.prefix, work.runner)
        idle = self._slots() - 1
        # Its timed metrics wait for the prefix when the prefix runs beside it (two slots or more).
        apart = self.timed_apart and prefix is not None and idle > 0 and _has_timed(work.evaluator)
        evaluating = self._input.remote(
            self._recipe_ref, work.model_id, work.model, work.reference, cpus, untimed_only=apart
        )
        modules = warm_modules(work.model)
        if prefix is not None and idle:
            self._start_early(prefix)
            # Slots left warm up while the prefix runs (the candidates wait for it anyway; without a
            # prefix a warm-up would hold a slot the first candidates could use).
            self._warming = [self._warm.remote(self._recipe_ref, modules, cpus) for _ in range(idle - 1)]
        doing = "evaluating the input model on the Ray cluster"
        if self._early is not None:
            doing += f" (and running {'>'.join(s.name for s in work.prefix)} meanwhile)"
        logger.info(
            "search over Ray: %s, %d task process(es) warming up; each on CPUs of its own",
            doing,
            len(self._warming),
        )
        work.phases.set(doing)
        result = self._result(self._wait_any([evaluating], work.stop))
        if result.evaluation is None:
            raise EvaluationError(f"evaluating the input model: {result.error or _NOTHING}")
        if prefix is not None and self._early is None:
            self._start_early(prefix)  # one slot: after the input model's evaluation
        elif self._early is not None and not self._ray.wait([self._early[0]], timeout=0)[0]:
            # The input model's slot is free while the prefix runs: its process loads what the
            # candidates use (the candidates cannot start before the prefix ends).
            self._warming.append(self._warm.remote(self._recipe_ref, modules, cpus))
        work.ran_on = result.ran_on
        if not apart:
            return result.evaluation
        # Its timed metrics, alone: after the prefix and the warm-ups, its untimed metrics from the cache.
        self._finish_early(work.phases, work.stop)
        self._settle_warming(work.phases, work.stop)
        work.phases.set("timing the input model on the Ray cluster, nothing else running")
        timing = self._input.remote(self._recipe_ref, work.model_id, work.model, work.reference, cpus)
        timed = self._result(self._wait_any([timing], work.stop))
        if timed.evaluation is None:
            raise EvaluationError(f"evaluating the input model: {timed.error or _NOTHING}")
        work.ran_on = {**(result.ran_on or {}), "timed": timed.ran_on}
        return timed.evaluation

    def _uncached(
        self, steps: tuple[Any, ...], runner: ChainRunner
    ) -> tuple[tuple[Any, ...], list[str]] | None:
        """``steps`` and their run keys, or None when there are none or they are all in the cache."""
        if not steps:
            return None
        keys = chain_keys(steps, runner)
        if all(runner.cache.load_run(key) is not None for key in keys):
            self._done.update(keys)
            return None
        return steps, keys

    def _start_early(self, prefix: tuple[tuple[Any, ...], list[str]]) -> None:
        steps, keys = prefix
        ref = self._early_chain.remote(self._recipe_ref, steps, self.settings.num_cpus)
        self._early = (ref, keys)

    def _finish_early(self, phases: Phases, stop: threading.Event | None) -> None:
        """Wait for the fixed prefix's task, if one was started; re-emit its events. A failed prefix is
        not an error here: each candidate runs it again and fails with its reason."""
        if self._early is None:
            return
        ref, keys = self._early
        self._early = None
        phases.set("running the shared prefix on the Ray cluster")
        result = self._result(self._wait_any([ref], stop))
        self._emit(result.events, phases)
        if result.error is None:
            self._done.update(keys)

    # -- realising ------------------------------------------------------------------------------------
    def realise(
        self, batch: Sequence[Proposal], total: int | None, work: CandidateWork
    ) -> Generator[Candidate, None, None]:
        """The batch's candidates in proposal order: in two phases when the search has timed metrics (see
        the module docstring), else each candidate whole in one task."""
        self._prepare(work)
        self._finish_early(work.phases, work.stop)
        self._shared_prefix(batch, work)
        if not (self.timed_apart and _has_timed(work.evaluator)):
            yield from self._realise_whole(batch, total, work)
            return
        untimed = self._untimed(batch, total, work)
        self._settle_warming(work.phases, work.stop)
        for index, proposal in enumerate(batch):
            result = untimed.get(index)
            if result is None:  # invalid: nothing ran in a task; the serial code records it
                yield work.realise(proposal, total)
                continue
            self._emit(result.events, work.phases)
            first = (
                result.candidate
                if result.candidate is not None
                else lost_candidate(proposal, result, _NOTHING)
            )
            self._done.update(run.key for run in first.runs)
            if first.status in ("failed", "invalid"):  # nothing to time; the serial search records this
                yield first
                continue
            if not work.time_it(first.metrics or {}):
                # Pruned on its untimed metrics, as in the serial search: the engine records it from the
                # cache (chain and untimed metrics; nothing runs).
                with self._deduplicated(work.phases):
                    pruned = work.realise(proposal, total)
                pruned.ran_on = first.ran_on
                yield pruned
                continue
            yield self._timed(proposal, total, first, work)

    def _realise_whole(
        self, batch: Sequence[Proposal], total: int | None, work: CandidateWork
    ) -> Generator[Candidate, None, None]:
        """Each candidate whole in one task (a search without timed metrics, or not ``timed_apart``): up
        to ``workers`` tasks in flight; a slot that frees takes the batch's next proposal; candidates
        yielded in proposal order."""
        queue = deque(enumerate(batch))
        inflight: dict[Any, int] = {}  # task ref -> index in the batch
        finished: dict[int, TaskResult] = {}
        # A stop (the caller closes this generator) submits nothing more. Tasks already running are left
        # to finish (their runs land in the cache), not cancelled: ray.cancel racing a task's completion
        # crashed the driver (Ray 2.60: "Tried to complete task that was not pending"). Ray ends them with
        # the driver when the workflow is cancelled.
        for index, proposal in enumerate(batch):
            while index not in finished:
                if len(inflight) < self.workers and queue:
                    self._submit(queue, inflight, batch, total, work, untimed_only=False)
                ref = self._wait_any(list(inflight), work.stop)
                finished[inflight.pop(ref)] = self._result(ref)
            result = finished.pop(index)
            self._emit(result.events, work.phases)
            candidate = (
                result.candidate
                if result.candidate is not None
                else lost_candidate(proposal, result, _NOTHING)
            )
            self._done.update(run.key for run in candidate.runs)
            yield candidate

    def _untimed(
        self, batch: Sequence[Proposal], total: int | None, work: CandidateWork
    ) -> dict[int, TaskResult]:
        """Phase 1: the chains and untimed metrics of ``batch``'s valid proposals, up to ``workers`` tasks
        in flight (a slot that frees takes the next proposal); returns when every one has ended (the
        barrier). A cancel leaves the running tasks to finish, as in :meth:`_realise_whole`."""
        queue = deque((i, p) for i, p in enumerate(batch) if p.steps is not None)
        inflight: dict[Any, int] = {}
        finished: dict[int, TaskResult] = {}
        while queue or inflight:
            if len(inflight) < self.workers and queue:
                self._submit(queue, inflight, batch, total, work, untimed_only=True)
            ref = self._wait_any(list(inflight), work.stop)
            finished[inflight.pop(ref)] = self._result(ref)
        return finished

    def _submit(
        self,
        queue: deque[tuple[int, Proposal]],
        inflight: dict[Any, int],
        batch: Sequence[Proposal],
        total: int | None,
        work: CandidateWork,
        *,
        untimed_only: bool,
    ) -> None:
        """Submit queued proposals until ``workers`` tasks are in flight."""
        while len(inflight) < self.workers and queue:
            at, queued = queue.popleft()
            ref = self._candidate.remote(
                self._recipe_ref, queued, total, self.settings.num_cpus, untimed_only=untimed_only
            )
            inflight[ref] = at
        numbers = ", ".join(str(batch[i].number) for i in sorted(inflight.values()))
        what = "passes and untimed metrics" if untimed_only else "running"
        work.phases.set(f"candidates {numbers}: {what} on the Ray cluster")

    def _timed(
        self, proposal: Proposal, total: int | None, first: Candidate, work: CandidateWork
    ) -> Candidate:
        """Phase 2: one task realises the candidate again, as the serial search does (its chain and untimed
        metrics from the cache) and runs its timed metrics, with no other task of the search running."""
        work.phases.set(
            f"candidate {proposal.number}: timed metrics on the Ray cluster, nothing else running"
        )
        ref = self._candidate.remote(
            self._recipe_ref, proposal, total, self.settings.num_cpus, untimed_only=False
        )
        result = self._result(self._wait_any([ref], work.stop))
        self._emit(result.events, work.phases, starts=False)
        if result.candidate is None:
            return lost_candidate(proposal, result, _NOTHING)
        candidate = result.candidate
        self._done.update(run.key for run in candidate.runs)
        timing = dict(candidate.ran_on or {})
        if candidate.timed_span is not None:  # the timed metrics' own seconds, within the task's
            timing["metrics_s"] = round(candidate.timed_span[1] - candidate.timed_span[0], 3)
        candidate.ran_on = {**(first.ran_on or {}), "timed": timing}
        return candidate

    def _settle_warming(self, phases: Phases, stop: threading.Event | None) -> None:
        """Wait for the warm-up tasks still running (none of the search's tasks runs while one is timed)."""
        if not self._warming:
            return
        _, self._warming = self._ray.wait(self._warming, num_returns=len(self._warming), timeout=0)
        if self._warming:
            phases.set("waiting for the Ray task processes to finish warming up before timing")
        while self._warming:
            check_stop(stop)
            _, self._warming = self._ray.wait(self._warming, num_returns=len(self._warming), timeout=_WAIT_S)

    def _emit(self, events: Sequence[EngineEvent], phases: Phases, starts: bool = True) -> None:
        """Re-emit a task's events, each cache path once (a host exports what an event names), and pass
        starts only when ``starts``."""
        for event in events:
            if not starts and isinstance(event, PassStarted):
                continue
            if self._announce(event):
                phases.emit(event)

    @contextmanager
    def _deduplicated(self, phases: Phases) -> Generator[None, None, None]:
        """Meanwhile (the engine realising a candidate from the cache), events about a cache path already
        announced are not announced again, nor pass starts."""
        listener = phases.listener

        def announce(event: EngineEvent) -> None:
            if not isinstance(event, PassStarted) and self._announce(event) and listener is not None:
                listener(event)

        phases.listener = announce
        try:
            yield
        finally:
            phases.listener = listener

    def _announce(self, event: EngineEvent) -> bool:
        """Whether ``event`` is news (it names no cache path announced before); noted."""
        paths = event_paths(event)
        if paths and paths <= self._announced:
            return False
        self._announced.update(paths)
        return True

    def _shared_prefix(self, batch: Sequence[Proposal], work: CandidateWork) -> None:
        """Run once, first, the chain prefix that two or more of ``batch``'s candidates share and that is
        not in the cache yet (the candidates would each run it at the same time otherwise)."""
        prefix = shared_prefix(batch, work.runner, self._done)
        if prefix is None:
            return
        steps, keys = prefix
        work.phases.set(f"running the shared prefix {'>'.join(s.name for s in steps)} on the Ray cluster")
        result = self._get(self._chain.remote(self._recipe_ref, steps, self._prefix_cpus), work)
        self._emit(result.events, work.phases)
        if result.error is None:
            self._done.update(keys)

    def _get(self, ref: Any, work: CandidateWork) -> TaskResult:
        return self._result(self._wait_any([ref], work.stop))

    def _wait_any(self, refs: list[Any], stop: threading.Event | None) -> Any:
        """The first of ``refs`` whose task ended (checking for a cancel meanwhile)."""
        while True:
            check_stop(stop)
            ready, _ = self._ray.wait(refs, num_returns=1, timeout=_WAIT_S)
            if ready:
                return ready[0]

    def _result(self, ref: Any) -> TaskResult:
        ray = self._ray
        try:
            result: TaskResult = ray.get(ref)
            return result
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, OlivineError):
                raise cause from None  # as the serial search would: e.g. the cache is not shared
            return TaskResult(
                None, error=f"the Ray task failed: {type(cause or exc).__name__}: {cause or exc}"
            )
        except ray.exceptions.RayError as exc:  # the worker or its node died, the task was cancelled
            return TaskResult(None, error=f"the Ray task ended: {type(exc).__name__}: {exc}")

    def close(self) -> None:
        if self._recipe is not None:
            self._recipe.discard()
            self._recipe = None
        if self._owns_ray and self._ray is not None:
            self._ray.shutdown()
        self._ray, self._owns_ray = None, False
