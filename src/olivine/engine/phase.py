"""Phases: what the engine is doing now, announced when it starts and re-announced every few seconds
(:data:`HEARTBEAT_S` after it began, then again every as many seconds) while it lasts, so no long step
(a pass run, an evaluation, quantization pre-processing) is silent in the log or a job's status."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType

from olivine.engine.events import EngineEvent, Listener, PhaseChanged

logger = logging.getLogger("olivine.engine")

#: Seconds between two reminders of a phase that is still running (events and log lines), counted from
#: the phase's start: a step that lasts longer than this is never silent.
HEARTBEAT_S = 5.0


class Phases:
    """Announces phases to the listener; a daemon thread repeats the current one with its elapsed time."""

    def __init__(self, workflow_id: str, listener: Listener | None, heartbeat_s: float = HEARTBEAT_S) -> None:
        self.workflow_id = workflow_id
        self.listener = listener
        self.heartbeat_s = heartbeat_s
        self._phase: str | None = None
        self._since = 0.0
        self._reminded = 0  # reminders given for the current phase
        self._lock = threading.Lock()
        self._emit_lock = threading.Lock()  # the engine thread and the heartbeat both emit
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def emit(self, event: EngineEvent) -> None:
        if self.listener is not None:
            with self._emit_lock:
                self.listener(event)

    def set(self, phase: str | None) -> None:
        with self._lock:
            changed = phase != self._phase
            self._phase, self._since, self._reminded = phase, time.monotonic(), 0
        if phase is not None and changed:
            self.emit(PhaseChanged(self.workflow_id, phase))

    def reporter(self, prefix: str) -> Callable[[str], None]:
        """A callback that sets the phase ``"<prefix>: <detail>"``."""
        return lambda detail: self.set(f"{prefix}: {detail}")

    def __enter__(self) -> Phases:
        self._thread = threading.Thread(target=self._beat, name="olivine-phase", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _beat(self) -> None:
        # Wakes often, reminds every heartbeat_s after the phase began (not on a timer of its own, which
        # could miss a phase that starts just after a tick and ends just before the next-but-one).
        tick = min(1.0, self.heartbeat_s / 4)
        while not self._stop.wait(tick):
            with self._lock:
                phase, since, reminded = self._phase, self._since, self._reminded
                elapsed = time.monotonic() - since
                due = phase is not None and elapsed >= (reminded + 1) * self.heartbeat_s
                if due:
                    self._reminded = int(elapsed // self.heartbeat_s)
            if due:
                logger.info("still %s (%.0fs)", phase, elapsed)
                self.emit(PhaseChanged(self.workflow_id, f"{phase} ({elapsed:.0f}s)"))
