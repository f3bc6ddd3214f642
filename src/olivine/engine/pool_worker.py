"""The local pool's worker processes (:mod:`olivine.engine.pool_executor` drives them): how they are
started, and what one does once started: import what the tasks need, then realise what the engine sends,
one task at a time, sending log records and results back on one socket, until told to stop or the
engine's process goes away.

Starting (:func:`start_workers`): the first worker is a fresh interpreter (``python -c``, not
multiprocessing's spawn, which re-runs the caller's ``__main__`` module in every worker: a script without
a main guard would start its search again there). When the pool starts several workers at once, that
first process imports the tasks' heavy libraries (torch, transformers: seconds of CPU each time) and
then forks the others, each with its own socket to the engine, before it runs any task: a fork of a
process that has only imported (no session, no model, no thread pool started) and that carries none of
the engine's state. onnxruntime is imported after the fork, by each worker (a process forked after
importing it hangs in its exit handlers; forked workers also end with ``os._exit``).

The forked workers are the first worker's children, not the engine's: the engine knows their pids from
their first message; the first worker reaps them and sends a dead one's exit status on its socket (the
engine then sees the socket's end), so it stops them before the first worker when the pool closes; each
watches the engine's process itself, so that one worker's crash does not take the others down. A worker
started later to replace one that died is a fresh interpreter.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from olivine.engine.task_work import TaskRecipe, import_modules
from olivine.errors import OlivineError

if TYPE_CHECKING:
    pass


# ---- inside a worker process -----------------------------------------------------------------------


def serve_fd(fd: int, level: int, number: int, forks: tuple[tuple[int, int], ...] = ()) -> None:
    """The entry point of a worker process (see :class:`WorkerProcess`): serve the engine on socket ``fd``;
    after the imports, fork a worker for each ``(socket fd, number)`` of ``forks`` (see the module
    docstring)."""
    engine = os.getppid()
    if _serve(Connection(fd), level, number, engine, dict(forks)):
        # A forked worker ends here without the interpreter's exit: the C++ runtime's exit handlers of a
        # library imported before the fork may wait for a thread that only the forking process has.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _serve(conn: Connection, level: int, number: int, engine: int, forks: dict[int, int]) -> bool:
    """A worker process: realise what the engine sends, one task at a time, until told to stop or the
    engine goes away (then return whether this process is a forked worker). Log records travel to the
    engine on the same pipe as the results."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the engine decides
    send = _connect(conn, level, number, engine)
    from olivine.engine import task_work

    recipe: TaskRecipe | None = None
    forked = False
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return forked
        kind = message[0]
        if kind == "stop":
            return forked
        if kind == "warm":  # the first message: import what the tasks will need, then say so
            modules = message[1]
            if forks:  # onnxruntime after the fork: forked after it, a process cannot exit cleanly
                import_modules([m for m in modules if m.split(".")[0] != "onnxruntime"])
            kept: list[int] = []  # sockets of forked workers, kept here for their exit status
            for fd, forked_number in list(forks.items()):
                del forks[fd]
                pid = os.fork()
                if pid == 0:  # the forked worker: its own socket only, then the same loop
                    conn.close()
                    for other in (*forks, *kept):
                        with contextlib.suppress(OSError):
                            os.close(other)
                    conn, number, forks, forked = Connection(fd), forked_number, {}, True
                    send = _connect(conn, level, number, engine)
                    break
                # Its socket stays open here until it is reaped, for one last message: its exit status.
                reaper = threading.Thread(
                    target=_reap, args=(pid, fd), name="olivine-pool-reaper", daemon=True
                )
                reaper.start()
                kept.append(fd)
            import_modules(modules)
            send(("ready", os.getpid()))
            continue
        if kind == "recipe":
            recipe = message[1]
            continue
        assert recipe is not None, "a task before the recipe"
        try:
            if kind == "input":  # the input model's untimed metrics
                _, model_id, model, reference = message
                # One CPU of its own and one thread (torch, OpenMP, onnxruntime): the engine's process
                # runs the prefix meanwhile, single-threaded too (two OpenMP pools spinning on two
                # shared cores crawl).
                reply: tuple[str, Any] = (
                    "ok",
                    task_work.input_task(recipe, model_id, model, reference, 1, untimed_only=True),
                )
            else:  # a candidate's untimed part (phase 1)
                _, proposal, total, cpus = message
                task_work.work_of(recipe).untimed_only = True
                reply = ("ok", task_work.candidate_task(recipe, proposal, total, cpus))
        except OlivineError as exc:
            reply = ("olivine-error", exc)
        except Exception as exc:  # a bug or a library error the task did not classify: this candidate fails
            reply = ("error", f"{type(exc).__name__}: {exc}")
        try:
            send(reply)
        except Exception as exc:  # the result could not be pickled
            send(("error", f"the worker could not send its result: {type(exc).__name__}: {exc}"))


def _reap(pid: int, fd: int) -> None:
    """Wait for forked worker ``pid`` to end, send the engine its exit status on its socket ``fd`` (the
    engine sees the socket's end after that), close it."""
    conn = Connection(fd)
    try:
        _, status = os.waitpid(pid, 0)
        with contextlib.suppress(OSError, ValueError):
            conn.send(("exited", status))
    finally:
        conn.close()


def _connect(conn: Connection, level: int, number: int, engine: int) -> Any:
    """Route this process's ``olivine`` log records to the engine on ``conn``, watch the engine's process
    (pid ``engine``); the function that sends a message on ``conn``."""
    lock = threading.Lock()

    def send(message: tuple[str, Any]) -> None:
        with lock:
            conn.send(message)

    root = logging.getLogger("olivine")
    for handler in list(root.handlers):
        root.removeHandler(handler)
    # A forked worker inherits the forking worker's handler on the root logger: its socket is closed here
    # (every record would fail with "handle is closed" and carry both workers' prefixes).
    for handler in list(logging.getLogger().handlers):
        if isinstance(handler, _ToEngine):
            logging.getLogger().removeHandler(handler)
    handler = _ToEngine(send, number)
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    # Other libraries' warnings go to the engine too (never their INFO: with no handler on the root
    # logger, importing onnxruntime's quantizers runs logging.basicConfig(level=INFO) in this process,
    # which prints every node of an int4 quantization on the engine's stderr, unscrubbed).
    others = _ToEngine(send, number)
    others.setLevel(logging.WARNING)
    logging.getLogger().addHandler(others)
    threading.Thread(target=_watch_engine, args=(engine,), name="olivine-pool-parent", daemon=True).start()
    return send


class _ToEngine(logging.handlers.QueueHandler):
    """Sends this worker's log records, prefixed with its number, to the engine."""

    def __init__(self, send: Any, number: int) -> None:
        super().__init__(_PipeQueue(send))  # type: ignore[arg-type]
        self.addFilter(_Prefix(f"[worker {number}] "))


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


def _watch_engine(engine: int) -> None:
    """Exit when the engine's process (pid ``engine``: the parent of the first worker, the grandparent of
    a forked one) is gone: nobody wants the result."""
    while True:
        time.sleep(1.0)
        if os.getppid() == engine:
            continue  # still the engine's child
        try:
            os.kill(engine, 0)
            gone = _state(engine) == "Z"  # dead, not reaped yet
        except ProcessLookupError:
            gone = True
        except PermissionError:  # the pid was taken by a process of another user: the engine is gone
            gone = True
        if gone:
            os._exit(1)


def _parent(pid: int) -> int | None:
    """Process ``pid``'s parent pid from /proc, None when it cannot be read."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _state(pid: int) -> str | None:
    """Process ``pid``'s state letter from /proc (``Z``: a zombie), None when it cannot be read."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


# ---- the engine's handle on a worker process ---------------------------------------------------


class WorkerProcess:
    """A worker process: ``python -c`` running :func:`serve_fd` on socket ``fd`` (and forking a worker
    for each ``(fd, number)`` of ``forks`` once it has imported; see the module docstring)."""

    def __init__(self, fd: int, level: int, number: int, forks: tuple[tuple[int, int], ...] = ()) -> None:
        code = (
            f"from olivine.engine.pool_worker import serve_fd; serve_fd({fd}, {level}, {number}, {forks!r})"
        )
        self.popen = subprocess.Popen(
            [sys.executable or "python", "-c", code],
            pass_fds=(fd, *(f for f, _ in forks)),
            stdin=subprocess.DEVNULL,
        )
        self.pid: int | None = self.popen.pid

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


class ForkedProcess:
    """A worker forked by the first worker of its group (see the module docstring): not the engine's
    child. Its pid is known from its first message (``ready``); before that it counts as alive (its
    socket tells when it is gone)."""

    def __init__(self, parent: int) -> None:
        self.parent = parent  # the worker that forked it (and reaps it)
        self.pid: int | None = None
        self.status: int | None = None  # its wait status, sent by the worker that reaped it

    def is_alive(self) -> bool:
        if self.status is not None:
            return False
        if self.pid is None:
            return True
        return _state(self.pid) not in (None, "Z")

    @property
    def exitcode(self) -> int | None:
        """As :attr:`subprocess.Popen.returncode` (``-N``: killed by signal N): from the status the
        worker that reaped it sent; None while it runs or when unknown (that worker died first)."""
        status = self.status
        if status is None:
            return None
        return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)

    def _signal(self, sig: int) -> None:
        if self.pid is not None and self.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def join(self, timeout: float) -> None:
        """Wait until it is gone: reaped by the worker that forked it, or dead with that worker gone too
        (then its parent is another process, which may or may not reap it)."""
        deadline = time.monotonic() + timeout
        while self.pid is not None and time.monotonic() < deadline:
            state, parent = _state(self.pid), _parent(self.pid)
            if state is None or (state == "Z" and parent != self.parent):
                return
            time.sleep(0.02)


def start_workers(numbers: list[int]) -> list[PoolWorker]:
    """Workers numbered ``numbers``: one fresh process that forks the others after its imports (one
    process each where ``os.fork`` is missing); send the first one ``("warm", modules)``, and only it (the
    forked ones start warm)."""
    level = logging.getLogger("olivine").getEffectiveLevel()
    if len(numbers) < 2 or not hasattr(os, "fork") or not Path("/proc/self/stat").is_file():
        return [_started(number, level) for number in numbers]
    pairs = [socket.socketpair() for _ in numbers]
    forks = tuple((child.fileno(), number) for (_, child), number in zip(pairs[1:], numbers[1:], strict=True))
    try:
        first = WorkerProcess(pairs[0][1].fileno(), level, numbers[0], forks)
    finally:
        for _, child in pairs:
            child.close()
    workers = [PoolWorker(numbers[0], Connection(pairs[0][0].detach()), first)]
    for (parent, _), number in zip(pairs[1:], numbers[1:], strict=True):
        forked = ForkedProcess(first.popen.pid)
        workers.append(PoolWorker(number, Connection(parent.detach()), forked, forked=True))
    return workers


def _started(number: int, level: int) -> PoolWorker:
    parent_end, child_end = socket.socketpair()
    try:
        process = WorkerProcess(child_end.fileno(), level, number)
    finally:
        child_end.close()
    return PoolWorker(number, Connection(parent_end.detach()), process)


class PoolWorker:
    """The engine's handle on one worker: its number, socket and process."""

    def __init__(
        self, number: int, conn: Connection, process: WorkerProcess | ForkedProcess, forked: bool = False
    ) -> None:
        self.number = number
        self.conn = conn
        self.process = process
        self.forked = forked  # forked by another worker after its imports: it needs no "warm" message
        self.recipe: str | None = None  # the token of the recipe it was sent
        self.ready = False  # it said it started (imports done, waiting for tasks)

    def mark_exited(self, status: Any) -> None:
        """The worker that forked it reaped it and sent its wait status (``exited``)."""
        if isinstance(self.process, ForkedProcess) and isinstance(status, int):
            self.process.status = status

    def mark_ready(self, pid: Any) -> None:
        """Its ``ready`` message arrived (with its pid)."""
        self.ready = True
        if isinstance(self.process, ForkedProcess) and isinstance(pid, int):
            self.process.pid = pid

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
