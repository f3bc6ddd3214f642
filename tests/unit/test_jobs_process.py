"""Worker process identity: a pid counts as the worker only while its start time matches; the monitor."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from olivine.hosts.jobs import ErrorKind, JobRecord, JobStatus
from olivine.hosts.process import mark_if_dead, process_alive, process_start_ticks
from olivine.hosts.store import JobStore

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])


def test_process_start_ticks_identify_a_live_process() -> None:
    ticks = process_start_ticks(os.getpid())
    assert ticks is not None and ticks > 0
    assert process_alive(os.getpid(), ticks)
    assert not process_alive(os.getpid(), ticks + 1)  # same pid, another start time: a reused pid


def test_process_start_ticks_treat_a_zombie_as_dead() -> None:
    proc = _sleeper()
    try:
        ticks = process_start_ticks(proc.pid)
        assert ticks is not None
        proc.kill()
        # Not reaped yet: the pid still exists in /proc, as a zombie.
        for _ in range(100):
            if process_start_ticks(proc.pid) is None:
                break
            time.sleep(0.02)
        assert Path(f"/proc/{proc.pid}").exists()
        assert not process_alive(proc.pid, ticks)
    finally:
        proc.kill()
        proc.wait()
    assert process_start_ticks(proc.pid) is None


def test_mark_if_dead_fails_a_running_job_whose_worker_is_gone(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    proc = _sleeper()
    ticks = process_start_ticks(proc.pid)
    record = JobRecord(
        "job-0000000001", "s", "wf", "w", "LocalWorker", pid=proc.pid, host_info={"pid_start_ticks": ticks}
    )
    store.create(record)
    running = store.update(record.job_id, state=JobStatus.RUNNING)
    assert mark_if_dead(store, running) == running
    proc.kill()
    proc.wait()
    failed = mark_if_dead(store, running)
    assert failed.state is JobStatus.FAILED and failed.error_kind is ErrorKind.INFRASTRUCTURE
    assert failed.message == f"worker process died (pid {proc.pid})"


def test_mark_if_dead_keeps_a_final_state_written_just_before_exit(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    record = JobRecord("job-0000000002", "s", "wf", "w", "LocalWorker", pid=2**22 + 1)  # no such pid
    store.create(record)
    stale = store.update(record.job_id, state=JobStatus.RUNNING)
    store.update(record.job_id, state=JobStatus.SUCCEEDED)  # the worker finished, then exited
    assert mark_if_dead(store, stale).state is JobStatus.SUCCEEDED
