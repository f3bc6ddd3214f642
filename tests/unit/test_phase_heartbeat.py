"""Phases: a phase that lasts longer than the heartbeat is reminded of, counted from its own start."""

from __future__ import annotations

import time

from olivine.engine.events import EngineEvent, PhaseChanged
from olivine.engine.phase import Phases


def _reminders(events: list[EngineEvent], phase: str) -> list[str]:
    return [e.phase for e in events if isinstance(e, PhaseChanged) and e.phase.startswith(f"{phase} (")]


def test_phase_reminders_follow_the_phase_start_not_a_fixed_timer() -> None:
    events: list[EngineEvent] = []
    with Phases("wf", events.append, heartbeat_s=0.4) as phases:
        phases.set("short")  # ends before its first reminder is due
        time.sleep(0.25)
        phases.set("long")  # starts mid-way between two multiples of the heartbeat
        time.sleep(1.0)
        phases.set(None)
        time.sleep(0.2)
    assert _reminders(events, "short") == []
    long = _reminders(events, "long")
    # Due at 0.4 s and 0.8 s after "long" began: a timer ticking every 0.4 s from the start would have
    # fired at 0.15 s and 0.55 s of it and reminded once.
    assert len(long) == 2
    assert [e.phase for e in events if isinstance(e, PhaseChanged)][:2] == ["short", "long"]
