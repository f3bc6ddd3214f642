"""Where a running job is, read from its own log: the points bench/faults.py injects faults at.

A worker logs when each step starts and ends (``[1/2] AddOliveMetadata 'meta': running`` ... ``done in``,
``evaluate <model>: running`` ... ``done in``, ``workflow 'x' finished in`` (the final export starts),
``job <id> SUCCEEDED:`` (the verdict: the seal and the status writes follow)). A fault aimed at a point
waits for that point's start line in the job log, then for a random part of how long the point lasted in
a calibration run, and strikes. Where it landed is read back from the log at the moment it struck
(the log lags the worker by the time a line takes through its scrubbing pipe: milliseconds).

No hook in the product: the points are the worker's real progress lines.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

POINTS = ("pass", "evaluation", "export", "commit")

_START = {
    "pass": re.compile(r"\] \S+ '[^']+': running"),
    "evaluation": re.compile(r"evaluate .+: running"),
    "export": re.compile(r"workflow '.+' finished in"),
    "commit": re.compile(r"job \S+ (SUCCEEDED|FAILED|CANCELLED):"),
}
_END = {
    "pass": re.compile(r"\] \S+ '[^']+': (done in|cache hit|failed)"),
    "evaluation": re.compile(r"evaluate .+: (done in|failed)"),
    "export": _START["commit"],
}
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def _stamp(line: str) -> float | None:
    m = _STAMP.match(line)
    if m is None:
        return None
    return datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


@dataclass
class PointTimes:
    """How often each point occurs in one run and how long it lasts (seconds, median)."""

    count: dict[str, int] = field(default_factory=dict)
    duration_s: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_log(cls, text: str, commit_s: float) -> PointTimes:
        times = cls()
        lines = text.splitlines()
        for point in ("pass", "evaluation", "export"):
            spans = []
            start: float | None = None
            for line in lines:
                stamp = _stamp(line)
                if _START[point].search(line):
                    start = stamp
                elif start is not None and stamp is not None and _END[point].search(line):
                    spans.append(stamp - start)
                    start = None
            times.count[point] = len(spans)
            spans.sort()
            times.duration_s[point] = spans[len(spans) // 2] if spans else 0.0
        times.count["commit"] = 1
        times.duration_s["commit"] = commit_s
        return times


def landed(text: str, alive: bool) -> str:
    """The point the job was at, by the last step line of its log: a point, ``between steps``,
    ``before the run`` or ``after exit``."""
    if not alive:
        return "after exit"
    where = "before the run"
    for line in text.splitlines():
        for point, pattern in _START.items():
            if pattern.search(line):
                where = point
        for point, pattern in _END.items():
            if point != "export" and pattern.search(line):
                where = "between steps"
    return where


def wait_for(log: Path, point: str, occurrence: int, alive: Callable[[], bool], timeout_s: float) -> bool:
    """Wait until the ``occurrence``-th (0-based) start of ``point`` is in ``log``; False if the job
    ended (``alive()`` false) or ``timeout_s`` passed first."""
    deadline = time.monotonic() + timeout_s
    pattern = _START[point]
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.is_file() else ""
        if sum(1 for _ in pattern.finditer(text)) > occurrence:
            return True
        if not alive():
            return False
        time.sleep(0.003)
    return False
