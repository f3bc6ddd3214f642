"""A progress bar on the terminal for ``olivine run --local``: the candidate being realised (``i of n``),
what the engine does now and for how long, and the best candidate so far with its metrics.

Only on a terminal: the bar is one line redrawn in place (``\\r``) under the log, which a file or a pipe
would fill with redraws; there the engine's log lines (one per candidate, and a reminder every few
seconds while a step lasts) are the progress. Log records are written above the bar: the console
handler clears the bar, writes the record, and draws the bar again.
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from olivine.engine.events import (
    CandidateFinished,
    CandidateStarted,
    EngineEvent,
    PhaseChanged,
    WorkflowFinished,
)

_BAR_CELLS = 20
#: Seconds between two redraws of the elapsed time while nothing else happens.
TICK_S = 1.0


@dataclass
class BarState:
    index: int | None = None  # the candidate being realised (1-based), None before the first
    total: int | None = None
    done: int = 0
    phase: str = "starting"
    phase_since: float = 0.0
    point: str = ""
    best: str = ""


def render(state: BarState, width: int, now: float) -> str:
    """The bar's line, at most ``width`` characters (pure: unit-tested)."""
    parts: list[str] = []
    if state.total:
        filled = min(_BAR_CELLS, round(_BAR_CELLS * state.done / state.total))
        bar = "#" * filled + "-" * (_BAR_CELLS - filled)
        current = f"candidate {state.index} of {state.total}" if state.index else f"0 of {state.total}"
        parts.append(f"[{bar}] {current}")
    elif state.index:
        parts.append(f"candidate {state.index}")
    elapsed = max(0.0, now - state.phase_since)
    parts.append(f"{_strip_elapsed(state.phase)} {elapsed:.0f}s")
    if state.point:
        parts.append(state.point)
    if state.best:
        parts.append(f"best {state.best}")
    line = " | ".join(parts)
    return line if len(line) <= width else line[: max(0, width - 3)] + "..."


_CANDIDATE_PREFIX = re.compile(r"^candidate \d+/[\d?]+: ")
_ELAPSED_SUFFIX = re.compile(r" \(\d+s\)$")


def _strip_elapsed(phase: str) -> str:
    """The phase without the heartbeat's ``(12s)`` suffix and the ``candidate i/n:`` prefix (the bar
    shows both already)."""
    return _CANDIDATE_PREFIX.sub("", _ELAPSED_SUFFIX.sub("", phase))


def _point(point: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in point.items())


def _best(record: Mapping[str, Any] | None, best_id: str | None, metrics: Mapping[str, Any]) -> str:
    if not best_id:
        return ""
    shown = []
    for key, value in metrics.items():
        number = value.get("value") if isinstance(value, Mapping) else value
        if isinstance(number, int | float):
            shown.append(f"{key} {number:.4g}")
    return best_id + (f" ({', '.join(shown)})" if shown else "")


class TerminalProgress:
    """An engine listener that draws the bar on ``stream`` (a terminal) and a ticker that keeps its
    elapsed time moving. Use as a context manager around the run."""

    def __init__(self, stream: TextIO, *, tick_s: float = TICK_S) -> None:
        self.stream = stream
        self.state = BarState(phase_since=time.monotonic())
        self.tick_s = tick_s
        self._lock = threading.RLock()
        self._drawn = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- listener ----------------------------------------------------------------------------------
    def __call__(self, event: EngineEvent) -> None:
        with self._lock:
            state = self.state
            if isinstance(event, CandidateStarted):
                state.index, state.total = event.index, event.total
                state.point = _point(event.point)
            elif isinstance(event, CandidateFinished):
                state.done, state.total = event.index, event.total
                state.best = _best(event.record, event.best_id, event.best_metrics)
            elif isinstance(event, PhaseChanged):
                phase = _strip_elapsed(event.phase)
                if phase != state.phase:
                    state.phase, state.phase_since = phase, time.monotonic()
            elif isinstance(event, WorkflowFinished):
                state.phase, state.phase_since = "finished", time.monotonic()
            self.draw()

    # -- drawing -----------------------------------------------------------------------------------
    def draw(self) -> None:
        with self._lock:
            width = max(20, shutil.get_terminal_size((100, 20)).columns - 1)
            self.stream.write("\r\x1b[2K" + render(self.state, width, time.monotonic()))
            self.stream.flush()
            self._drawn = True

    def clear(self) -> None:
        with self._lock:
            if self._drawn:
                self.stream.write("\r\x1b[2K")
                self.stream.flush()
                self._drawn = False

    # -- lifetime ----------------------------------------------------------------------------------
    def __enter__(self) -> TerminalProgress:
        self._thread = threading.Thread(target=self._tick, name="olivine-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self.clear()

    def _tick(self) -> None:
        while not self._stop.wait(self.tick_s):
            self.draw()


class AboveTheBar(logging.Handler):
    """Wraps the console handler: a record is written after the bar is cleared, then the bar is redrawn."""

    def __init__(self, inner: logging.Handler, progress: TerminalProgress) -> None:
        super().__init__(inner.level)
        self.inner = inner
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        with self.progress._lock:
            self.progress.clear()
            self.inner.emit(record)
            self.progress.draw()
