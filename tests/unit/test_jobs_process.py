"""Worker process identity: a pid counts as the worker only while its start time matches; the monitor
(dead workers, and pending jobs whose submitting process died)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from olivine.jobs.records import ErrorKind, JobRecord, JobStatus, utc_now
from olivine.hosts.process import SUBMITTER_GRACE_S, mark_if_dead, process_alive, process_start_ticks
from olivine.jobs.store import JobStore

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


def _dead_process() -> tuple[int, int]:
    """The pid and start time of a process that has ended (and been reaped)."""
    proc = _sleeper()
    ticks = process_start_ticks(proc.pid)
    assert ticks is not None
    proc.kill()
    proc.wait()
    return proc.pid, ticks


def _pending(store: JobStore, job_id: str, pid: int, ticks: int | None, age_s: float) -> JobRecord:
    record = JobRecord(
        job_id,
        f"s-{job_id}",
        "wf",
        "w",
        "LocalWorker",
        created_at=utc_now() - timedelta(seconds=age_s),
        submitter_pid=pid,
        submitter_start_ticks=ticks,
        submitter_host=socket.gethostname(),
    )
    store.create(record)
    return record


def test_mark_if_dead_fails_a_pending_job_whose_submitter_died(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    pid, ticks = _dead_process()
    record = _pending(store, "job-0000000003", pid, ticks, age_s=SUBMITTER_GRACE_S + 5)
    failed = mark_if_dead(store, record)
    assert failed.state is JobStatus.FAILED and failed.error_kind is ErrorKind.INFRASTRUCTURE
    assert failed.message == (
        f"submission did not complete: the submitting process (pid {pid}) ended before the job was "
        "handed to its host"
    )


def test_mark_if_dead_waits_out_the_grace_period_for_a_pending_job(tmp_path: Path) -> None:
    # The worker may be starting with its pid not recorded yet: it reports RUNNING itself.
    store = JobStore(tmp_path / "jobs.db")
    pid, ticks = _dead_process()
    record = _pending(store, "job-0000000004", pid, ticks, age_s=1.0)
    assert mark_if_dead(store, record).state is JobStatus.PENDING
    assert mark_if_dead(store, record, submitter_grace_s=0.5).state is JobStatus.FAILED


def test_mark_if_dead_keeps_a_pending_job_whose_submitter_lives_or_is_elsewhere(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    me = _pending(store, "job-0000000005", os.getpid(), process_start_ticks(os.getpid()), age_s=3600)
    assert mark_if_dead(store, me).state is JobStatus.PENDING  # a long bundle build, still going
    pid, ticks = _dead_process()
    remote = JobRecord(
        "job-0000000006",
        "s6",
        "wf",
        "w",
        "LocalWorker",
        submitter_pid=pid,
        submitter_start_ticks=ticks,
        submitter_host="elsewhere",
    )
    store.create(remote.evolve(created_at=utc_now() - timedelta(hours=1)))
    assert mark_if_dead(store, store.get(remote.job_id)).state is JobStatus.PENDING
