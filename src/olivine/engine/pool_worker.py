"""The local pool's worker processes (:mod:`olivine.engine.pool_executor` drives them): how one is
started (``python -c``, not multiprocessing's spawn), and what it does once started: import what the tasks
need, then realise what the engine sends, one task at a time, sending log records and results back on one
socket, until told to stop or the engine's process goes away."""

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
from typing import TYPE_CHECKING, Any

from olivine.engine.task_work import TaskRecipe, import_modules
from olivine.errors import OlivineError

if TYPE_CHECKING:
    pass


# ---- inside a worker process -----------------------------------------------------------------------


def serve_fd(fd: int, level: int, number: int) -> None:
    """The entry point of a worker process (see :class:`WorkerProcess`): serve the engine on socket ``fd``."""
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
        if kind == "warm":  # the first message: import what the tasks will need, then say so
            import_modules(message[1])
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


# ---- the engine's handle on a worker process ---------------------------------------------------


class WorkerProcess:
    """A worker process: ``python -c`` running :func:`serve_fd` (not multiprocessing's spawn, which
    re-runs the caller's ``__main__`` module in every worker: a script without a main guard would start
    its search again there)."""

    def __init__(self, fd: int, level: int, number: int) -> None:
        code = f"from olivine.engine.pool_worker import serve_fd; serve_fd({fd}, {level}, {number})"
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


class PoolWorker:
    def __init__(self, number: int) -> None:
        self.number = number
        parent_end, child_end = socket.socketpair()
        level = logging.getLogger("olivine").getEffectiveLevel()
        try:
            self.process = WorkerProcess(child_end.fileno(), level, number)
        finally:
            child_end.close()
        self.conn: Connection = Connection(parent_end.detach())
        self.recipe: str | None = None  # the token of the recipe it was sent
        self.ready = False  # it said it started (imports done, waiting for tasks)

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
