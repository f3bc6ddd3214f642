"""Local process identity and signals, for hosts whose worker is a process on this machine.

A pid alone is not an identity: after a worker dies its pid can be reused by any process. The start time
in ``/proc/<pid>/stat`` (clock ticks since boot) is recorded at launch; a pid is "our worker" only while
that start time matches. A zombie (exited, not yet reaped) counts as dead.

:func:`death_of` is what the local hosts' monitor looks at: a job whose worker is gone, or a ``PENDING``
job that never got a worker because the process submitting it died first. These facts live in the
record's ``host_info`` (``pid``, ``pid_start_ticks``, ``submitter``), which only the local hosts read.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from olivine.jobs.records import JobRecord, JobStatus, utc_now

_PROC = Path("/proc")
_STARTTIME_FIELD = 19  # field 22 of /proc/<pid>/stat, counted from the state field (field 3)

#: How long after its creation a PENDING job without a worker may sit with its submitter gone. A
#: submitter killed between starting the worker and recording its pid leaves a worker that reports
#: RUNNING itself within seconds; the grace keeps the monitor from failing that job first.
SUBMITTER_GRACE_S = 30.0


def process_start_ticks(pid: int) -> int | None:
    """The start time of a live process, or None if it does not exist, is a zombie, or is unknown."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after its closing one.
    fields = stat.rpartition(")")[2].split()
    if not fields or fields[0] in ("Z", "X"):
        return None
    return int(fields[_STARTTIME_FIELD])


def process_alive(pid: int, start_ticks: int | None) -> bool:
    """Whether ``pid`` is still the process that had ``start_ticks`` when it was launched."""
    if _PROC.is_dir():
        now = process_start_ticks(pid)
        return now is not None and (start_ticks is None or now == start_ticks)
    try:  # no /proc (macOS): existence only
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worker_pid(job: JobRecord) -> int | None:
    """The worker process id a local host recorded for ``job``."""
    pid = job.host_info.get("pid")
    return int(pid) if pid is not None else None


def job_process_alive(job: JobRecord) -> bool:
    """Whether the worker process recorded in ``job`` is alive (False when none was recorded)."""
    pid = worker_pid(job)
    if pid is None:
        return False
    return process_alive(pid, job.host_info.get("pid_start_ticks"))


def submitter_info() -> dict[str, Any]:
    """The identity of this (submitting) process, for :func:`death_of`."""
    pid = os.getpid()
    return {"pid": pid, "start_ticks": process_start_ticks(pid), "host": socket.gethostname()}


def death_of(job: JobRecord, *, submitter_grace_s: float = SUBMITTER_GRACE_S) -> str | None:
    """Why a job that should be running cannot be (its worker process is gone), or None.

    A ``PENDING`` job with no worker yet counts too when the process that submitted it is gone (on this
    machine) and ``submitter_grace_s`` have passed since its creation: nobody is left to start it.
    """
    if job.state.is_terminal():
        return None
    pid = worker_pid(job)
    if pid is None:
        if job.state is not JobStatus.PENDING or not _submitter_gone(job, submitter_grace_s):
            return None
        submitter = job.host_info.get("submitter", {})
        return (
            f"submission did not complete: the submitting process (pid {submitter.get('pid')}) ended "
            "before the job was handed to its host"
        )
    if job_process_alive(job):
        return None
    return f"worker process died (pid {pid})"


def _submitter_gone(job: JobRecord, grace_s: float) -> bool:
    submitter = job.host_info.get("submitter") or {}
    if submitter.get("pid") is None or submitter.get("host") != socket.gethostname():
        return False  # an older record, or submitted from another machine: no way to tell
    if utc_now() - job.created_at < timedelta(seconds=grace_s):
        return False
    return not process_alive(int(submitter["pid"]), submitter.get("start_ticks"))


def signal_group(job: JobRecord, sig: signal.Signals) -> bool:
    """Send ``sig`` to the worker's process group (its session leader is the worker); False if gone."""
    pid = worker_pid(job)
    if pid is None or not job_process_alive(job):
        return False
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return False
    return True


def wait_gone(job: JobRecord, timeout_s: float, poll_s: float = 0.1) -> bool:
    """Wait up to ``timeout_s`` for the worker process to end; True if it did."""
    deadline = time.monotonic() + timeout_s
    while job_process_alive(job):
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)
    return True
