"""A search spread over worker processes on this machine (``SpreadSettings(executor="local")``, set by
``search_workers`` on a LocalSystem or LocalWorker system).

- ``workers`` worker processes (fresh interpreters: no copy of the engine's threads or onnxruntime
  sessions) each realise one candidate at a time with :func:`olivine.engine.task_work.candidate_task`,
  which claims ``ceil(num_cpus)`` CPUs of its own for the whole candidate and pins every thread of the
  worker to them (:func:`olivine.engine.affinity.exclusive_cpus`). So a timed latency run never shares
  a CPU with another candidate's pass runs or evaluation (other programs on the machine are not
  controlled; CPUs still share caches and memory bandwidth).
- The chain prefix that a batch's candidates share (conversion + optimization before each quantization)
  runs once, first, in one worker, on as many CPUs as the pool has (nothing else runs meanwhile).
- Results land in the one cache (the engine's ``cache_dir``): workers open it by path. Candidates come
  back in proposal order, so the walk hears them in the serial order: the same seed gives the same
  candidates and the same best model as the serial search.
- A worker that dies (killed, crashed in native code) fails its candidate, with the reason, and is
  replaced; the search goes on. A cancel (the engine's stop event: SIGTERM to a job's worker) or any
  error ends the pool: workers get SIGTERM, then SIGKILL after :data:`STOP_GRACE_S`. Workers exit by
  themselves when the engine's process goes away.
- Workers' log records are re-logged by the engine's process (so they reach the job's log), prefixed
  with the worker's number.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Generator, Sequence
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

from olivine.engine.candidates import Candidate
from olivine.engine.executor import SpreadSettings, spread_task_cpus
from olivine.engine.realise import CandidateWork, check_stop
from olivine.engine.task_work import TaskRecipe, TaskResult, lost_candidate, shared_prefix
from olivine.errors import ConfigError, HostError, OlivineError
from olivine.search.strategy import Proposal

if TYPE_CHECKING:
    from olivine.engine.resolve import ResolvedWorkflow

logger = logging.getLogger("olivine.engine")

_WAIT_S = 0.5  # how often the engine checks for a cancel while it waits for a worker
_QUEUE_FACTOR = 4  # proposals asked for per worker (see LocalPoolExecutor.__init__)
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


# ---- the worker process side -----------------------------------------------------------------------


def serve_fd(fd: int, level: int, number: int) -> None:
    """The entry point of a worker process (see :class:`_Process`): serve the engine on socket ``fd``."""
    _serve(Connection(fd), level, number)


def _serve(conn: Connection, level: int, number: int) -> None:
    """A worker process: realise what the engine sends, one task at a time, until told to stop or the
    engine goes away. Log records travel to the engine on the same pipe as the results."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the engine decides
    lock = threading.Lock()

    def send(message: tuple[str, Any]) -> None:
        with lock:
            conn.send(message)

    root = logging.getLogger("olivine")
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.handlers.QueueHandler(_PipeQueue(send))  # type: ignore[arg-type]
    handler.addFilter(_Prefix(f"[worker {number}] "))
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    parent = os.getppid()
    threading.Thread(target=_watch_parent, args=(parent,), name="olivine-pool-parent", daemon=True).start()
    from olivine.engine import task_work

    recipe: TaskRecipe | None = None
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        kind = message[0]
        if kind == "stop":
            return
        if kind == "recipe":
            recipe = message[1]
            continue
        assert recipe is not None, "a task before the recipe"
        try:
            if kind == "candidate":
                _, proposal, total, cpus = message
                reply: tuple[str, Any] = ("ok", task_work.candidate_task(recipe, proposal, total, cpus))
            else:
                _, steps, cpus = message
                reply = ("ok", task_work.chain_task(recipe, steps, cpus))
        except OlivineError as exc:
            reply = ("olivine-error", exc)
        except Exception as exc:  # a bug or a library error the task did not classify: this candidate fails
            reply = ("error", f"{type(exc).__name__}: {exc}")
        try:
            send(reply)
        except Exception as exc:  # the result could not be pickled
            send(("error", f"the worker could not send its result: {type(exc).__name__}: {exc}"))


class _PipeQueue:
    """The queue a :class:`logging.handlers.QueueHandler` puts records in: the pipe to the engine."""

    def __init__(self, send: Any) -> None:
        self.send = send

    def put_nowait(self, record: logging.LogRecord) -> None:
        self.send(("log", record))


class _Prefix(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = f"{self.prefix}{record.getMessage()}"
        record.args = None
        return True


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:  # the engine's process is gone: nobody wants the result
            os._exit(1)


# ---- the engine side -------------------------------------------------------------------------------


class _Process:
    """A worker process: ``python -c`` running :func:`serve_fd` (not multiprocessing's spawn, which
    re-runs the caller's ``__main__`` module in every worker: a script without a main guard would start
    its search again there)."""

    def __init__(self, fd: int, level: int, number: int) -> None:
        code = f"from olivine.engine.pool_executor import serve_fd; serve_fd({fd}, {level}, {number})"
        self.popen = subprocess.Popen(
            [sys.executable or "python", "-c", code], pass_fds=(fd,), stdin=subprocess.DEVNULL
        )
        self.pid = self.popen.pid

    def is_alive(self) -> bool:
        return self.popen.poll() is None

    @property
    def exitcode(self) -> int | None:
        return self.popen.poll()

    def terminate(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.popen.terminate()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.popen.kill()

    def join(self, timeout: float) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout)


class _Worker:
    def __init__(self, number: int) -> None:
        self.number = number
        parent_end, child_end = socket.socketpair()
        level = logging.getLogger("olivine").getEffectiveLevel()
        try:
            self.process = _Process(child_end.fileno(), level, number)
        finally:
            child_end.close()
        self.conn: Connection = Connection(parent_end.detach())
        self.recipe: str | None = None  # the token of the recipe it was sent

    def send(self, message: tuple[Any, ...]) -> None:
        self.conn.send(message)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.close()
        if self.process.is_alive():
            self.process.terminate()

    def reap(self, deadline: float) -> None:
        self.process.join(max(0.0, deadline - time.monotonic()))
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)


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
        # The shared prefix runs alone: it gets every CPU the pool would use.
        self.prefix_cpus = min(allowed, per_task * self.workers)
        # The walk is asked for more proposals than run at once, so that a worker freed early takes the
        # next candidate instead of waiting for the slowest of its group.
        self.width = self.workers * _QUEUE_FACTOR
        self._pool: list[_Worker] = []
        self._started = 0
        self._recipe: TaskRecipe | None = None
        self._done: set[str] = set()  # run keys known to be in the cache
        if per_task * self.workers > allowed:
            logger.warning(
                "local search pool: %d worker(s) x %d CPU(s) but this process may use %d CPU(s): workers "
                "wait for free CPUs",
                self.workers,
                per_task,
                allowed,
            )

    # -- the pool -------------------------------------------------------------------------------------
    def _prepare(self, work: CandidateWork) -> None:
        if self._recipe is None:
            self._recipe = TaskRecipe.of(work)
            logger.info(
                "local search pool: up to %d candidate(s) at once in worker processes, %d CPU(s) each",
                self.workers,
                self.per_task,
            )
        while len(self._pool) < self.workers:
            self._started += 1
            self._pool.append(_Worker(self._started))

    def _send(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        assert self._recipe is not None
        if worker.recipe != self._recipe.token:
            worker.send(("recipe", self._recipe))
            worker.recipe = self._recipe.token
        worker.send(message)

    def _drop(self, worker: _Worker) -> None:
        """Stop ``worker`` and take it out of the pool (:meth:`_prepare` starts a fresh one)."""
        if worker in self._pool:
            self._pool.remove(worker)
        worker.stop()
        worker.reap(time.monotonic() + STOP_GRACE_S)

    # -- realising ------------------------------------------------------------------------------------
    def realise(
        self, batch: Sequence[Proposal], total: int | None, work: CandidateWork
    ) -> Generator[Candidate, None, None]:
        """Up to ``workers`` candidates in flight; a worker that frees takes the batch's next proposal;
        candidates are yielded in proposal order."""
        self._prepare(work)
        self._shared_prefix(batch, work)
        self._prepare(work)
        queue = deque(enumerate(batch))
        idle = list(self._pool)
        inflight: dict[int, tuple[_Worker, int]] = {}  # worker number -> (worker, index in the batch)
        finished: dict[int, TaskResult] = {}
        try:
            for index, proposal in enumerate(batch):
                while index not in finished:
                    if idle and queue:
                        while idle and queue:
                            worker = idle.pop(0)
                            at, queued = queue.popleft()
                            self._send(worker, ("candidate", queued, total, self.settings.num_cpus))
                            inflight[worker.number] = (worker, at)
                        running = sorted(at for _, at in inflight.values())
                        numbers = ", ".join(str(batch[i].number) for i in running)
                        work.phases.set(f"candidates {numbers} running in local worker processes")
                    worker, result = self._wait_any([w for w, _ in inflight.values()], work)
                    _, at = inflight.pop(worker.number)
                    finished[at] = result
                    if worker.process.is_alive() and not worker.conn.closed:
                        idle.append(worker)
                    else:  # it died: a fresh worker takes its place
                        self._drop(worker)
                        self._prepare(work)
                        idle.append(self._pool[-1])
                result = finished.pop(index)
                for event in result.events:
                    work.phases.emit(event)
                candidate = (
                    result.candidate
                    if result.candidate is not None
                    else lost_candidate(proposal, result, "the worker process returned nothing")
                )
                self._done.update(run.key for run in candidate.runs)
                yield candidate
        finally:
            # The walk stopped, a cancel or an error: candidates still running are not wanted. Their
            # workers go (a late answer would be read as the next task's); the next batch starts fresh ones.
            for worker, _ in inflight.values():
                self._drop(worker)

    def _shared_prefix(self, batch: Sequence[Proposal], work: CandidateWork) -> None:
        """Run once, first, the chain prefix that two or more of ``batch``'s candidates share and that is
        not in the cache yet (the candidates would each run it at the same time otherwise)."""
        prefix = shared_prefix(batch, work.runner, self._done)
        if prefix is None:
            return
        steps, keys = prefix
        work.phases.set(f"running the shared prefix {'>'.join(s.name for s in steps)} in a local worker")
        worker = self._pool[0]
        self._send(worker, ("chain", steps, float(self.prefix_cpus)))
        try:
            _, result = self._wait_any([worker], work)
        except BaseException:
            self._drop(worker)
            raise
        if not worker.process.is_alive() or worker.conn.closed:
            self._drop(worker)
        for event in result.events:
            work.phases.emit(event)
        if result.error is None:
            self._done.update(keys)
        # A failed prefix is not an error here: each candidate runs it again and fails with its reason.

    def _wait_any(self, busy: list[_Worker], work: CandidateWork) -> tuple[_Worker, TaskResult]:
        """The first of ``busy`` that answered or died (checking for a cancel meanwhile); log records
        that arrive meanwhile are logged here."""
        by_conn = {w.conn: w for w in busy}
        while True:
            check_stop(work.stop)
            for item in wait(list(by_conn), timeout=_WAIT_S):  # an answer, a log record or EOF (it died)
                worker = by_conn[item]  # type: ignore[index]
                while worker.conn.poll():
                    try:
                        kind, value = worker.conn.recv()
                    except (EOFError, OSError):
                        worker.conn.close()
                        return worker, self._died(worker, work)
                    if kind == "log":
                        logging.getLogger(value.name).handle(value)
                        continue
                    return worker, _reply(kind, value)

    def _died(self, worker: _Worker, work: CandidateWork) -> TaskResult:
        worker.process.join(_DEATH_GRACE_S)
        time.sleep(_DEATH_GRACE_S)  # a cancel that signals the whole process group killed it too: say so
        check_stop(work.stop)
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
        for worker in pool:
            worker.stop()
        deadline = time.monotonic() + STOP_GRACE_S
        for worker in pool:
            worker.reap(deadline)
        if self._recipe is not None:
            self._recipe.discard()
            self._recipe = None


def _reply(kind: str, value: Any) -> TaskResult:
    if kind == "ok":
        result: TaskResult = value
        return result
    if kind == "olivine-error":
        raise value  # as the serial search would: e.g. the cache is not usable
    return TaskResult(None, error=f"the worker process failed: {value}")
