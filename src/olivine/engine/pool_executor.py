"""A search spread over worker processes on this machine (``SpreadSettings(executor="local")``, set by
``search_workers`` on a LocalSystem or LocalWorker system).

Each batch of proposals is realised in two phases (a small walk that cannot stop early is one batch:
:meth:`LocalPoolExecutor.batch_width`):

1. **Untimed, in parallel.** ``workers`` worker processes (not forks of the engine: no copy of its
   threads or onnxruntime sessions; one fresh interpreter imports the libraries and forks the others,
   see :mod:`olivine.engine.pool_worker`) each take one candidate at a time and realise its pass chain
   and its untimed metrics (accuracy, custom, size) with :func:`olivine.engine.task_work.candidate_task` on
   ``ceil(num_cpus)`` CPUs of their own (:func:`olivine.engine.affinity.exclusive_cpus`); a worker that
   frees takes the batch's next proposal, skipping those that would wait for a shared step another
   running candidate is making (:meth:`olivine.passes.base.Pass.shared_steps`: while one candidate
   pre-processes the graph for every quantization, the other worker converts to fp16). The chain
   prefix that the batch's candidates share (conversion + optimization before each quantization) runs
   once, first, in one worker, on as many CPUs as the pool has (nothing else runs meanwhile).
2. **Timed, alone.** A barrier: every worker has answered and is idle (blocked on its socket), and no
   worker is starting. Then the engine's own process realises the batch's candidates again, one after
   another in proposal order, exactly as the serial search does: the chain and the untimed metrics come
   from the cache, and the timed metrics (latency, throughput) run with nothing else of this workflow
   running on the machine. A candidate that failed a goal on its untimed metrics is not timed (pruned),
   as in the serial search. (Timing in the workers next to each other was measured to mis-rank on this
   2-vCPU VM: an int8 model at 33 ms there vs 10 ms alone.)

So the candidates, their metrics and the best model are the serial search's (same seed, same result);
the pool only moves the untimed work into parallel processes. Each candidate's ``ran_on`` in the
footprint says where its untimed part ran (node, CPUs, threads seen outside them, start/end) and, under
``timed``, when its timed metrics ran (start/end, the engine's pid; absent when not timed).

- Results land in the one cache (the engine's ``cache_dir``): workers open it by path.
- A worker that dies (killed, crashed in native code) fails its candidate, with the reason, and is
  replaced; the search goes on. A cancel (the engine's stop event: SIGTERM to a job's worker) or any
  error ends the pool: workers get SIGTERM, then SIGKILL after :data:`STOP_GRACE_S`. Workers exit by
  themselves when the engine's process goes away.
- The worker processes' own side is :mod:`olivine.engine.pool_worker`.
- Workers' log records are re-logged by the engine's process (so they reach the job's log), prefixed
  with the worker's number.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import logging.handlers
import math
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Generator, Sequence
from multiprocessing.connection import wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

from olivine.engine.candidates import Candidate
from olivine.engine.events import EngineEvent, EvaluationFinished, PassFailed, PassFinished, PassStarted
from olivine.engine.executor import SpreadSettings, spread_task_cpus
from olivine.engine.phase import Phases
from olivine.engine.pool_worker import PoolWorker, start_workers
from olivine.engine.realise import CandidateWork, check_stop
from olivine.engine.task_work import (
    TaskRecipe,
    TaskResult,
    chain_keys,
    lost_candidate,
    shared_prefix,
    warm_modules,
)
from olivine.errors import ConfigError, HostError, PassRunError
from olivine.search.space import ResolvedPass
from olivine.search.strategy import Proposal, SearchWalk

if TYPE_CHECKING:
    from olivine.engine.chain import ChainRunner
    from olivine.engine.evaluation import CachedEvaluator, Evaluation
    from olivine.engine.executor import InputWork
    from olivine.engine.resolve import ResolvedWorkflow
    from olivine.model.handle import ModelHandle
    from olivine.search.ranking import Objectives

logger = logging.getLogger("olivine.engine")

_WAIT_S = 0.5  # how often the engine checks for a cancel while it waits for a worker
_QUEUE_FACTOR = 8  # proposals asked for per worker (see LocalPoolExecutor.__init__)
_WHOLE_WALK_MAX = 64  # a walk of at most this many candidates that cannot stop early: one batch
_DEATH_GRACE_S = 0.3  # a worker died: wait this long for a cancel that killed it too to be seen
STOP_GRACE_S = 5.0  # SIGTERM to SIGKILL when the pool stops


def allowed_cpu_count() -> int:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def local_spread(
    wf: ResolvedWorkflow, system: Any, key: str, file: str | None = None
) -> SpreadSettings | None:
    """The spread a LocalSystem / LocalWorker ``system`` asks for with ``search_workers`` (None: none);
    refused, naming ``key``, where it cannot do what it promises (the Ray system's rules)."""
    workers = int(getattr(system, "search_workers", 0) or 0)
    if not workers:
        return None
    cpus = spread_task_cpus(
        wf,
        getattr(system, "search_task_cpus", None),
        where="in worker processes",
        each="each worker",
        key=key,
        file=file,
    )
    allowed = allowed_cpu_count()
    if math.ceil(cpus) > allowed:
        raise ConfigError(
            f"each candidate would claim {math.ceil(cpus)} CPU(s) but this machine lets Olivine use "
            f"{allowed}: lower search_task_cpus (or the timed metrics' intra_op_num_threads)",
            path=key,
            file=file,
        )
    if wf.search is not None and wf.search.sampler == "tpe":
        logger.info("the tpe sampler proposes from each result: candidates run one at a time in the pool")
    return SpreadSettings(workers=workers, num_cpus=float(cpus), executor="local")


# ---- the engine side -------------------------------------------------------------------------------


class LocalPoolExecutor:
    """Realises each batch's candidates in worker processes on this machine (see the module docstring)."""

    def __init__(self, settings: SpreadSettings) -> None:
        if settings.workers < 1:
            raise HostError(f"local search pool: {settings.workers} worker(s); at least 1")
        allowed = allowed_cpu_count()
        per_task = max(1, math.ceil(settings.num_cpus))
        if per_task > allowed:
            raise HostError(
                f"local search pool: each candidate needs {per_task} CPU(s) but this process may use only "
                f"{allowed}; lower search_task_cpus (or intra_op_num_threads)"
            )
        self.settings = settings
        self.workers = settings.workers
        self.per_task = per_task
        # The walk is asked for more proposals than run at once: a worker freed early takes the next
        # candidate instead of waiting for the slowest of its group, and each batch ends in one barrier
        # and timed phase (the fewer, the less a worker idles at the end of phase 1). A search that
        # stops early (stop_when_goals_met, max_time) may have done the untimed work of up to a batch of
        # proposals the serial search would not have run; their results are dropped.
        self.width = self.workers * _QUEUE_FACTOR
        self._pool: list[PoolWorker] = []
        self._started = 0
        self._recipe: TaskRecipe | None = None
        self._done: set[str] = set()  # run keys known to be in the cache
        self._announced: set[Path] = set()  # run folders and records whose events were emitted
        self._shared_made: set[tuple[str, str]] = set()  # shared steps a finished candidate got or made
        if per_task * self.workers > allowed:
            logger.warning(
                "local search pool: %d worker(s) x %d CPU(s) but this process may use %d CPU(s): workers "
                "wait for free CPUs",
                self.workers,
                per_task,
                allowed,
            )

    def batch_width(self, walk: SearchWalk) -> int:
        """How many proposals to ask ``walk`` for at once: all of them (one untimed phase, one barrier,
        one timed phase) when the walk is joint, cannot stop early
        (``stop_when_goals_met``, ``max_time``: a stop would drop the untimed work done ahead) and has at
        most :data:`_WHOLE_WALK_MAX` candidates; else :attr:`width`. Every batch boundary costs a barrier
        and the idle tail of a phase (a worker with nothing left while the other finishes). A sampler that
        learns (TPE) still proposes one at a time (the walk's rule)."""
        strategy, total = walk.strategy, walk.total
        if (
            strategy is None
            or strategy.execution_order != "joint"
            or strategy.stop_when_goals_met
            or strategy.max_time
            or total is None
            or total > _WHOLE_WALK_MAX
        ):
            return self.width
        return max(self.width, total)

    # -- the pool -------------------------------------------------------------------------------------
    def _prepare(self, work: CandidateWork) -> None:
        self._prepare_parts(work.runner, work.evaluator, work.objectives)

    def _prepare_parts(
        self, runner: ChainRunner, evaluator: CachedEvaluator | None, objectives: Objectives
    ) -> None:
        """The recipe (with ``objectives``: a workers' search gets them once the input model is
        evaluated) and ``workers`` live workers."""
        if self._recipe is not None and self._recipe.objectives != objectives:
            self._recipe = dataclasses.replace(self._recipe, objectives=objectives)
            for worker in self._pool:
                worker.recipe = None  # sent again, same token: the worker's search takes the objectives
        if self._recipe is None:
            self._recipe = TaskRecipe.of_parts(runner, evaluator, objectives)
            logger.info(
                "local search pool: up to %d candidate(s) at once in worker processes, %d CPU(s) each",
                self.workers,
                self.per_task,
            )
        missing = self.workers - len(self._pool)
        if missing > 0:
            numbers = list(range(self._started + 1, self._started + missing + 1))
            self._started += missing
            started = start_workers(numbers)
            for worker in started:
                if not worker.forked:
                    worker.send(("warm", warm_modules(self._recipe.input_model)))
            self._pool.extend(started)

    def _send(self, worker: PoolWorker, message: tuple[Any, ...]) -> None:
        assert self._recipe is not None
        if worker.recipe != self._recipe.token:
            worker.send(("recipe", self._recipe))
            worker.recipe = self._recipe.token
        worker.send(message)

    def _drop(self, worker: PoolWorker) -> None:
        """Stop ``worker`` and take it out of the pool (:meth:`_prepare` starts a fresh one)."""
        if worker in self._pool:
            self._pool.remove(worker)
        worker.stop()
        worker.reap(time.monotonic() + STOP_GRACE_S)

    def _drop_all(self, workers: Sequence[PoolWorker]) -> None:
        """:meth:`_drop` each of ``workers``; those a worker forked go first, while it still lives to reap
        them (see :mod:`olivine.engine.pool_worker`)."""
        for worker in sorted(workers, key=lambda w: not w.forked):
            self._drop(worker)

    # -- the input model ------------------------------------------------------------------------------
    def evaluate_input(self, work: InputWork) -> Evaluation:
        """The search's input model, in the same two phases as a batch: a worker evaluates its untimed
        metrics (e.g. a PyTorch reference) while the engine's process runs the steps every candidate
        shares (``work.prefix``) and the other workers start; the barrier; then the engine evaluates it
        as the serial search does (untimed metrics from the cache, timed ones alone)."""
        from olivine.engine.executor import evaluate_in_process
        from olivine.search.ranking import Objectives

        if not any(part == "untimed" for part, _ in work.evaluator.parts):
            return evaluate_in_process(work)
        self._prepare_parts(work.runner, work.evaluator, Objectives())
        worker = self._pool[0]
        self._send(worker, ("input", work.model_id, work.model, work.reference))
        doing = "evaluating the input model's untimed metrics in a local worker"
        if work.prefix:
            doing += f" (and running {'>'.join(s.name for s in work.prefix)} meanwhile)"
        work.phases.set(doing)
        try:
            with _one_torch_thread(work.model):
                if work.prefix:
                    keys = chain_keys(work.prefix, work.runner)
                    self._run_prefix(work.prefix, keys, work.runner, work.phases)
                _, result = self._wait_any([worker], work.stop)
        except BaseException:
            self._drop_all([worker])
            raise
        if result.error is not None:  # the worker died: the engine evaluates it (and says why)
            logger.warning("local search pool: the input model's untimed metrics: %s", result.error)
            self._drop(worker)
        self._barrier(work.phases, work.stop)
        evaluation = evaluate_in_process(work)
        work.ran_on = dict(result.ran_on or {})
        if evaluation.timed_span is not None:
            began, ended = evaluation.timed_span
            work.ran_on["timed"] = {"pid": os.getpid(), "started": round(began, 3), "ended": round(ended, 3)}
        return evaluation

    # -- realising ------------------------------------------------------------------------------------
    def realise(
        self, batch: Sequence[Proposal], total: int | None, work: CandidateWork
    ) -> Generator[Candidate, None, None]:
        """Phase 1: the batch's untimed work in the workers; the barrier; phase 2: each candidate in
        proposal order in this process, timed with nothing else running (see the module docstring)."""
        self._prepare(work)
        self._shared_prefix(batch, work)
        self._prepare(work)
        untimed = self._untimed(batch, total, work)
        self._barrier(work.phases, work.stop)
        for index, proposal in enumerate(batch):
            result = untimed.get(index)
            if result is None:  # invalid: nothing ran in a worker; the serial code records it
                yield work.realise(proposal, total)
                continue
            for event in result.events:
                if self._announce(event):
                    work.phases.emit(event)
            first = (
                result.candidate
                if result.candidate is not None
                else lost_candidate(proposal, result, "the worker process returned nothing")
            )
            self._done.update(run.key for run in first.runs)
            if first.status in ("failed", "invalid"):  # nothing to time; the serial search records this
                yield first
                continue
            before = self._workers_cpu_s()
            candidate = self._timed(proposal, total, work)
            candidate.ran_on = dict(first.ran_on or {})
            if candidate.timed_span is not None:
                began, ended = candidate.timed_span
                after = self._workers_cpu_s()
                used = None if before is None or after is None else round(after - before, 3)
                candidate.ran_on["timed"] = {
                    "pid": os.getpid(),
                    "started": round(began, 3),
                    "ended": round(ended, 3),
                    # CPU seconds the pool's workers used meanwhile (the barrier: 0 to the clock tick)
                    "workers_cpu_s": used,
                }
            yield candidate

    def _untimed(
        self, batch: Sequence[Proposal], total: int | None, work: CandidateWork
    ) -> dict[int, TaskResult]:
        """Phase 1: up to ``workers`` candidates' chains and untimed metrics in flight; a worker that
        frees takes the next proposal. Invalid proposals are not sent."""
        queue = deque((i, p) for i, p in enumerate(batch) if p.steps is not None)
        needs = {i: shared_needs(p.chain, work.runner) for i, p in queue}
        idle = list(self._pool)
        inflight: dict[int, tuple[PoolWorker, int]] = {}  # worker number -> (worker, index in the batch)
        finished: dict[int, TaskResult] = {}
        try:
            while queue or inflight:
                if idle and queue:
                    while idle and queue:
                        worker = idle.pop(0)
                        making = {n for _, i in inflight.values() for n in needs[i]} - self._shared_made
                        at, queued = _take(queue, needs, making)
                        self._send(worker, ("untimed", queued, total, self.settings.num_cpus))
                        inflight[worker.number] = (worker, at)
                    running = sorted(at for _, at in inflight.values())
                    numbers = ", ".join(str(batch[i].number) for i in running)
                    work.phases.set(f"candidates {numbers}: passes and untimed metrics in local workers")
                worker, result = self._wait_any([w for w, _ in inflight.values()], work.stop)
                _, at = inflight.pop(worker.number)
                finished[at] = result
                self._shared_made |= needs[at]  # made (or failed: then each run fails alike, no wait)
                if worker.process.is_alive() and not worker.conn.closed:
                    idle.append(worker)
                else:  # it died: a fresh worker takes its place, if there is work left for it
                    self._drop(worker)
                    if queue:
                        self._prepare(work)
                        idle.append(self._pool[-1])
        except BaseException:
            # A cancel or an error: candidates still running are not wanted. Their workers go (a late
            # answer would be read as the next task's); the next batch starts fresh ones.
            self._drop_all([worker for worker, _ in inflight.values()])
            raise
        return finished

    def _workers_cpu_s(self) -> float | None:
        """The CPU seconds (user + system) the live workers used so far (None where /proc is absent)."""
        total = 0.0
        for worker in self._pool:
            used = None if worker.process.pid is None else _cpu_s(worker.process.pid)
            if used is None:
                return None
            total += used
        return total

    def _barrier(self, phases: Phases, stop: threading.Event | None) -> None:
        """Wait until every worker has started and is idle, so that nothing of this pool runs while the
        engine times (a worker started in phase 1 may have had no task: it would still be importing)."""
        starting = {w.conn: w for w in self._pool if not w.ready}
        if starting:
            phases.set("waiting for local workers to finish starting before timing")
        while starting:
            check_stop(stop)
            for item in wait(list(starting), timeout=_WAIT_S):
                worker = starting[item]  # type: ignore[index]
                try:
                    while worker.conn.poll() and not worker.ready:
                        kind, value = worker.conn.recv()
                        if kind == "log":
                            logging.getLogger(value.name).handle(value)
                        elif kind == "ready":
                            worker.mark_ready(value)
                        elif kind == "exited":
                            worker.mark_exited(value)
                except (EOFError, OSError):  # it died while starting: gone (a later batch starts one)
                    self._drop(worker)
                    del starting[item]  # type: ignore[arg-type]
                    continue
                if worker.ready:
                    del starting[item]  # type: ignore[arg-type]

    def _timed(self, proposal: Proposal, total: int | None, work: CandidateWork) -> Candidate:
        """Phase 2: realise the candidate in this process, as the serial search does (its chain and
        untimed metrics from the cache)."""
        with self._deduplicated(work.phases, starts=False):
            return work.realise(proposal, total)

    @contextlib.contextmanager
    def _deduplicated(self, phases: Phases, starts: bool = True) -> Generator[None, None, None]:
        """Meanwhile, events about a run folder or record already announced are not announced again (a
        host would export it again), nor pass starts unless ``starts``."""
        listener = phases.listener

        def announce(event: EngineEvent) -> None:
            if not starts and isinstance(event, PassStarted):
                return
            if self._announce(event) and listener is not None:
                listener(event)

        phases.listener = announce
        try:
            yield
        finally:
            phases.listener = listener

    def _announce(self, event: EngineEvent) -> bool:
        """Whether ``event`` is news (it names no run folder or record announced before); noted."""
        paths = _paths(event)
        if paths and paths <= self._announced:
            return False
        self._announced.update(paths)
        return True

    def _shared_prefix(self, batch: Sequence[Proposal], work: CandidateWork) -> None:
        """Run once, first, the chain prefix that two or more of ``batch``'s candidates share and that is
        not in the cache yet (the candidates would each run it at the same time otherwise). It runs in
        the engine's process, which has the input model's libraries loaded (torch for a conversion),
        while the workers start and import theirs."""
        prefix = shared_prefix(batch, work.runner, self._done)
        if prefix is None:
            return
        steps, keys = prefix
        work.phases.set(f"running the shared prefix {'>'.join(s.name for s in steps)}")
        self._run_prefix(steps, keys, work.runner, work.phases)

    def _run_prefix(
        self, steps: Sequence[ResolvedPass], keys: list[str], runner: ChainRunner, phases: Phases
    ) -> None:
        """Realise ``steps`` (run keys ``keys``) in the engine's process."""
        try:
            with self._deduplicated(phases):
                runner.realise(steps, label="shared prefix: ")
        except PassRunError:
            return  # not an error here: each candidate runs it again and fails with its reason
        self._done.update(keys)

    def _wait_any(
        self, busy: list[PoolWorker], stop: threading.Event | None
    ) -> tuple[PoolWorker, TaskResult]:
        """The first of ``busy`` that answered or died (checking for a cancel meanwhile); log records
        and start-up notes that arrive meanwhile are handled here."""
        by_conn = {w.conn: w for w in busy}
        while True:
            check_stop(stop)
            for item in wait(list(by_conn), timeout=_WAIT_S):  # an answer, a log record or EOF (it died)
                worker = by_conn[item]  # type: ignore[index]
                while worker.conn.poll():
                    try:
                        kind, value = worker.conn.recv()
                    except (EOFError, OSError):
                        worker.conn.close()
                        return worker, self._died(worker, stop)
                    if kind == "log":
                        logging.getLogger(value.name).handle(value)
                        continue
                    if kind == "ready":
                        worker.mark_ready(value)
                        continue
                    if kind == "exited":  # a forked worker's status, sent as it was reaped: EOF next
                        worker.mark_exited(value)
                        continue
                    return worker, _reply(kind, value)

    def _died(self, worker: PoolWorker, stop: threading.Event | None) -> TaskResult:
        worker.process.join(_DEATH_GRACE_S)
        time.sleep(_DEATH_GRACE_S)  # a cancel that signals the whole process group killed it too: say so
        check_stop(stop)
        code = worker.process.exitcode
        how = f"exit code {code}"
        if code is not None and code < 0:
            try:
                how = signal.Signals(-code).name
            except ValueError:
                how = f"signal {-code}"
        return TaskResult(None, error=f"the worker process (pid {worker.process.pid}) died ({how})")

    def close(self) -> None:
        pool, self._pool = self._pool, []
        # Forked workers first, while the worker that forked them lives to reap them.
        for group in ([w for w in pool if w.forked], [w for w in pool if not w.forked]):
            for worker in group:
                worker.stop()
            deadline = time.monotonic() + STOP_GRACE_S
            for worker in group:
                worker.reap(deadline)
        if self._recipe is not None:
            self._recipe.discard()
            self._recipe = None


@contextlib.contextmanager
def _one_torch_thread(model: ModelHandle) -> Generator[None, None, None]:
    """Meanwhile torch in this process (imported here for a PyTorch / Hugging Face ``model``: a conversion
    will need it) runs one intra-op thread; afterwards it gets back the count it had (its default when
    it was imported here), so the input model's timed metrics run as in the serial search."""
    torch: Any = sys.modules.get("torch")
    if torch is None and model.kind in ("hf", "pytorch"):
        with contextlib.suppress(ImportError):
            import torch
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def shared_needs(chain: Sequence[ResolvedPass], runner: ChainRunner) -> frozenset[tuple[str, str]]:
    """The shared steps (:meth:`olivine.passes.base.Pass.shared_steps`) the runs of ``chain`` get or make,
    each as (its input model's id, the step's name)."""
    needs: set[tuple[str, str]] = set()
    model_id = runner.input_model_id
    for step in chain:
        needs.update((model_id, name) for name in step.cls.shared_steps(step.config))
        model_id = runner.key(step, model_id)
    return frozenset(needs)


def _take(
    queue: deque[tuple[int, Proposal]],
    needs: dict[int, frozenset[tuple[str, str]]],
    making: set[tuple[str, str]],
) -> tuple[int, Proposal]:
    """The queued proposal a free worker takes: the first that needs none of the shared steps a running
    candidate is making (it would wait for it: e.g. every quantization for the graph's pre-processing),
    else the first. Which worker runs what changes; the results stay in proposal order."""
    for position, (at, proposal) in enumerate(queue):
        if not needs[at] & making:
            del queue[position]
            return at, proposal
    return queue.popleft()


def _cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) process ``pid`` used, from /proc (None where it cannot be read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _paths(event: EngineEvent) -> set[Path]:
    """The cache paths an event announces (a host exports them): a run's folder or a record."""
    if isinstance(event, PassFinished):
        return {event.run_dir}
    if isinstance(event, (PassFailed, EvaluationFinished)):
        return {event.record_path}
    return set()


def _reply(kind: str, value: Any) -> TaskResult:
    if kind == "ok":
        result: TaskResult = value
        return result
    if kind == "olivine-error":
        raise value  # as the serial search would: e.g. the cache is not usable
    return TaskResult(None, error=f"the worker process failed: {value}")
