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

from olivine.hosts.base import host_of
from olivine.hosts.process import SUBMITTER_GRACE_S, death_of, process_alive, process_start_ticks
from olivine.jobs.records import ErrorKind, JobRecord, JobStatus, utc_now
from olivine.jobs.status import WorkerStatus
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


def _worker_job(job_id: str, pid: int, ticks: int | None, **extra: object) -> JobRecord:
    info = {"pid": pid, "pid_start_ticks": ticks}
    config = {"type": "LocalWorker"}
    return JobRecord(job_id, "s" + job_id, "wf", "w", "LocalWorker", config, host_info=info, **extra)  # type: ignore[arg-type]


def test_death_of_a_running_job_whose_worker_is_gone() -> None:
    proc = _sleeper()
    running = _worker_job("job-0000000001", proc.pid, process_start_ticks(proc.pid), state=JobStatus.RUNNING)
    assert death_of(running) is None
    proc.kill()
    proc.wait()
    assert death_of(running) == f"worker process died (pid {proc.pid})"


def test_monitor_keeps_a_final_status_the_worker_wrote_just_before_exit(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    record = _worker_job("job-0000000002", 2**22 + 1, None, job_dir=str(job_dir))  # no such pid
    store.create(record)
    stale = store.update(record.job_id, state=JobStatus.RUNNING)
    # The worker finished (its status says so), then exited.
    WorkerStatus(record.job_id, "wf", state=JobStatus.SUCCEEDED, message="done").write(
        job_dir / "status.json"
    )
    host = host_of(stale, store)
    assert host.observe(stale).state is JobStatus.SUCCEEDED
    assert store.get(record.job_id).state is JobStatus.RUNNING  # observing wrote nothing
    assert host.monitor(stale).state is JobStatus.SUCCEEDED
    assert store.get(record.job_id).message == "done"


def test_monitor_fails_a_dead_worker_once_and_is_idempotent(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    pid, ticks = _dead_process()
    record = _worker_job("job-0000000007", pid, ticks)
    store.create(record)
    running = store.update(record.job_id, state=JobStatus.RUNNING)
    host = host_of(running, store)
    failed = host.monitor(running)
    assert failed.state is JobStatus.FAILED and failed.error_kind is ErrorKind.INFRASTRUCTURE
    assert host.monitor(store.get(record.job_id)) == failed == store.get(record.job_id)


def _dead_process() -> tuple[int, int]:
    """The pid and start time of a process that has ended (and been reaped)."""
    proc = _sleeper()
    ticks = process_start_ticks(proc.pid)
    assert ticks is not None
    proc.kill()
    proc.wait()
    return proc.pid, ticks


def _pending(job_id: str, pid: int, ticks: int | None, age_s: float, host: str | None = None) -> JobRecord:
    submitter = {"pid": pid, "start_ticks": ticks, "host": host or socket.gethostname()}
    return JobRecord(
        job_id,
        f"s-{job_id}",
        "wf",
        "w",
        "LocalWorker",
        created_at=utc_now() - timedelta(seconds=age_s),
        host_info={"submitter": submitter},
    )


def test_death_of_a_pending_job_whose_submitter_died() -> None:
    pid, ticks = _dead_process()
    record = _pending("job-0000000003", pid, ticks, age_s=SUBMITTER_GRACE_S + 5)
    assert death_of(record) == (
        f"submission did not complete: the submitting process (pid {pid}) ended before the job was "
        "handed to its host"
    )


def test_death_of_waits_out_the_grace_period_for_a_pending_job() -> None:
    # The worker may be starting with its pid not recorded yet: it reports RUNNING itself.
    pid, ticks = _dead_process()
    record = _pending("job-0000000004", pid, ticks, age_s=1.0)
    assert death_of(record) is None
    assert death_of(record, submitter_grace_s=0.5) is not None


def test_death_of_spares_a_pending_job_whose_submitter_lives_or_is_elsewhere() -> None:
    me = _pending("job-0000000005", os.getpid(), process_start_ticks(os.getpid()), age_s=3600)
    assert death_of(me) is None  # a long bundle build, still going
    pid, ticks = _dead_process()
    assert death_of(_pending("job-0000000006", pid, ticks, age_s=3600, host="elsewhere")) is None
