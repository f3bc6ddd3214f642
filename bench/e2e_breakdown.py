"""Where an end-to-end run's wall time went, read from each tool's own log (both print step timings).

Stages: start-up and exit (process wall time outside the workflow's own span), the input model's
evaluation, each pass (by its name in the config), the final model's evaluation, and whatever the
workflow did between those steps. Olivine logs ``done in X s`` per step and ``finished in X s``; Olive
logs ``Pass <name>:<type> finished in X seconds`` and timestamps to the millisecond, from which its
evaluations and span are taken.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

START_UP = "start-up and exit (outside the workflow)"
INPUT_EVAL = "input model evaluation"
FINAL_EVAL = "final model evaluation"
BETWEEN = "between steps (caching, outputs)"

_OLIVINE_INPUT = re.compile(r"evaluate input model: done in ([\d.]+)s")
_OLIVINE_PASS = re.compile(r"\[\d+/\d+\] \S+ '([^']+)': done in ([\d.]+)s")
_OLIVINE_OUTPUT_EVAL = re.compile(r"evaluate '[^']+' output: done in ([\d.]+)s")
_OLIVINE_SPAN = re.compile(r"workflow '[^']+' finished in ([\d.]+)s")

_OLIVE_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")
_OLIVE_PASS = re.compile(r"Pass ([^:\s]+):\S+ finished in ([\d.]+) seconds")


def olivine_breakdown(log: str, wall_s: float) -> dict[str, float]:
    """Stage -> seconds for an Olivine ``run`` log (``--local`` or a job's log)."""
    span = _last_float(_OLIVINE_SPAN, log)
    if span is None:
        return {}
    stages: dict[str, float] = {START_UP: wall_s - span}
    stages[INPUT_EVAL] = sum(float(m) for m in _OLIVINE_INPUT.findall(log))
    for name, seconds in _OLIVINE_PASS.findall(log):
        stages[name] = stages.get(name, 0.0) + float(seconds)
    stages[FINAL_EVAL] = sum(float(m) for m in _OLIVINE_OUTPUT_EVAL.findall(log))
    stages[BETWEEN] = span - sum(v for k, v in stages.items() if k != START_UP)
    return stages


def olive_breakdown(log: str, wall_s: float) -> dict[str, float]:
    """Stage -> seconds for an ``olive run`` log (INFO level, Olive 0.13's messages)."""
    stamped = [(_time(m.group(1)), line) for line in log.splitlines() if (m := _OLIVE_TIME.match(line))]
    start = next((t for t, line in stamped if "Running workflow" in line), None)
    if start is None:
        return {}
    end = stamped[-1][0]
    input_done = next((t for t, line in stamped if "Input model evaluation results" in line), None)
    final_start = next((t for t, line in stamped if "Run model evaluation for the final model" in line), None)
    final_done = next((t for t, line in stamped if "Saved evaluation results of output model" in line), None)
    span = (end - start).total_seconds()
    stages: dict[str, float] = {START_UP: wall_s - span}
    stages[INPUT_EVAL] = (input_done - start).total_seconds() if input_done else 0.0
    for name, seconds in _OLIVE_PASS.findall(log):
        stages[name] = stages.get(name, 0.0) + float(seconds)
    stages[FINAL_EVAL] = (final_done - final_start).total_seconds() if final_start and final_done else 0.0
    stages[BETWEEN] = span - sum(v for k, v in stages.items() if k != START_UP)
    return stages


def breakdown(tool: str, log_path: Path, wall_s: float) -> dict[str, float]:
    """The stages of one whole run of ``tool`` (``olivine`` or ``olive``); empty if the log lacks them."""
    if not log_path.is_file():
        return {}
    text = log_path.read_text(encoding="utf-8", errors="replace")
    stages = olivine_breakdown(text, wall_s) if tool == "olivine" else olive_breakdown(text, wall_s)
    return {k: round(v, 2) for k, v in stages.items()}


def _last_float(pattern: re.Pattern[str], text: str) -> float | None:
    found = pattern.findall(text)
    return float(found[-1]) if found else None


def _time(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f")
