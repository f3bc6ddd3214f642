"""The terminal progress bar: what the line says (candidate i of n, phase and its time, parameters, best so
far), that it fits the terminal, and that log records are written above it."""

from __future__ import annotations

import io
import logging

import pytest

from olivine.cli.progress import AboveTheBar, BarState, TerminalProgress, render
from olivine.engine.events import CandidateFinished, CandidateStarted, PhaseChanged


def test_render_shows_candidate_phase_point_and_best() -> None:
    state = BarState(
        index=5,
        total=18,
        done=4,
        phase="candidate 5/18: running pass quantization (OnnxDynamicQuantization)",
        phase_since=100.0,
        point="quantization.per_channel=True",
        best="c0003 (latency-avg 47.04)",
    )
    line = render(state, 400, now=112.4)
    assert line.startswith("[####----------------] candidate 5 of 18 | ")
    assert "running pass quantization (OnnxDynamicQuantization) 12s" in line
    assert "quantization.per_channel=True" in line and line.endswith("best c0003 (latency-avg 47.04)")


def test_render_before_the_search_and_without_a_total() -> None:
    assert render(
        BarState(phase="evaluating input model: fidelity (custom) (20s)", phase_since=0.0), 200, 21.0
    ) == ("evaluating input model: fidelity (custom) 21s")
    assert render(BarState(index=3, phase="x"), 200, 0.0).startswith("candidate 3 | x")


def test_render_fits_the_width() -> None:
    state = BarState(index=1, total=2, phase="p" * 300)
    line = render(state, 60, 0.0)
    assert len(line) == 60 and line.endswith("...")


def test_terminal_progress_follows_events_and_writes_log_records_above_the_bar(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    stream = io.StringIO()
    bar = TerminalProgress(stream)
    bar(CandidateStarted("wf", 1, 2, {"q.per_channel": True}))
    bar(PhaseChanged("wf", "candidate 1/2: evaluating: latency (latency) round 2/5 (10s)"))
    bar(CandidateFinished("wf", 1, 2, {}, "c0001", {"latency-avg": {"value": 1.5}}))
    last = stream.getvalue().rsplit("\r\x1b[2K", 1)[-1]
    assert "[##########----------] candidate 1 of 2" in last
    assert "| evaluating: latency (latency) round 2/5 " in last and "(10s)" not in last
    assert "q.per_channel=True" in last and "best c0001 (latency-avg 1.5)" in last

    console = logging.StreamHandler(stream)
    console.setFormatter(logging.Formatter("%(message)s"))
    handler = AboveTheBar(console, bar)
    handler.emit(logging.LogRecord("olivine", logging.INFO, __file__, 1, "candidate 1 of 2 done", None, None))
    tail = stream.getvalue()[len(stream.getvalue()) - 400 :]
    # The bar is cleared, the record written on its own line, then the bar drawn again below it.
    assert "\r\x1b[2Kcandidate 1 of 2 done\n\r\x1b[2K[" in tail
    with bar:
        pass
    assert stream.getvalue().endswith("\r\x1b[2K")  # the bar is gone when the run ends
