"""Whose fault is it when user code ends the process: ``sys.exit``, ``os._exit``, ``KeyboardInterrupt``.

Olivine's own code never calls these while a workflow runs, so when one happens inside a workflow it
came from user code (a user script, a model loader, a metric function). The decisions (README, "Trust
and failure model"):

* ``sys.exit(n)`` (any ``n``, also 0) -> the job FAILED, error kind ``user``: "user code called
  sys.exit(n)"; a foreground run exits 1. A workflow that did not finish never reports success.
* ``KeyboardInterrupt`` raised by user code (no SIGINT arrived) -> FAILED, kind ``user``. A real
  SIGINT (Ctrl-C in a foreground run, a signal sent to a worker) is an interruption: foreground exit
  130; a worker's job CANCELLED.
* ``os._exit(n)`` -> the process ends at once, but first :func:`guard_os_exit` records FAILED, kind
  ``user``: "user code called os._exit(n)", instead of the monitor's later "worker process died".
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from olivine.errors import UserCodeExitError

#: Set when this process received SIGINT (see :func:`install_sigint_flag`).
SIGINT_RECEIVED = threading.Event()


def install_sigint_flag() -> None:
    """Make SIGINT set :data:`SIGINT_RECEIVED` before raising KeyboardInterrupt as usual, so a
    KeyboardInterrupt can be told apart from one that user code raised itself."""

    def _on_sigint(signum: int, frame: FrameType | None) -> None:
        SIGINT_RECEIVED.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, _on_sigint)


def user_code_exit(exc: BaseException) -> UserCodeExitError | None:
    """The error to record for an exception that left a running workflow, when it is user code ending
    it (``SystemExit``, or ``KeyboardInterrupt`` without SIGINT); None otherwise."""
    if isinstance(exc, SystemExit):
        return UserCodeExitError(f"user code called sys.exit({exc.code!r}); the workflow did not finish")
    if isinstance(exc, KeyboardInterrupt) and not SIGINT_RECEIVED.is_set():
        return UserCodeExitError("user code raised KeyboardInterrupt (no interrupt signal arrived)")
    return None


@contextmanager
def guard_os_exit(record: Callable[[UserCodeExitError], None]) -> Iterator[None]:
    """While active, ``os._exit(n)`` first calls ``record`` with the error to store, then exits."""
    real_exit = os._exit

    def _exit(code: int) -> None:  # the signature of os._exit
        try:
            record(UserCodeExitError(f"user code called os._exit({code}); the workflow did not finish"))
        finally:
            real_exit(code)

    os._exit = _exit  # type: ignore[assignment]
    try:
        yield
    finally:
        os._exit = real_exit
