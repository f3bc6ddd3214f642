"""The ``LocalWorker`` host: a detached worker process on this machine.

The worker is started in its own session (``start_new_session``), with stdin closed and its output in the
job's log file, so closing the terminal (SIGHUP) or killing the submitting process does not stop it.
Cancel sends SIGTERM to the worker's process group (the worker stops after the running step and exports
what is finished), then SIGKILL after ``cancel_grace_s``. :meth:`LocalWorkerHost.refresh` is the monitor:
a job whose worker process is gone without writing a final state is marked FAILED.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading

from olivine.config.systems import LocalWorkerConfig
from olivine.errors import HostError
from olivine.jobs.abandoned import close_export
from olivine.jobs.bundle import Bundle
from olivine.jobs.records import ErrorKind, JobRecord, JobSpec, JobStatus
from olivine.hosts.local_process import LocalProcessHost
from olivine.hosts.process import process_start_ticks, signal_group, wait_gone

logger = logging.getLogger(__name__)

# After SIGKILL the kernel ends the process at once; this only bounds waiting for /proc to show it.
_KILL_WAIT_S = 5.0


class LocalWorkerHost(LocalProcessHost):
    """Runs each job in a detached ``python -m olivine.jobs.worker`` process."""

    type_name = "LocalWorker"
    detached = True
    config: LocalWorkerConfig

    def describe(self) -> str:
        return f"host '{self.name}' (LocalWorker: a detached worker process on this machine)"

    def default_datastore(self) -> str | None:
        return self.config.datastores

    def submit(self, bundle: Bundle, job: JobRecord, spec: JobSpec) -> JobRecord:
        if job.job_dir is None or job.log_path is None:
            raise HostError(f"job {job.job_id} has no job folder or log path")
        python = self.config.python or sys.executable
        command = [python, "-m", "olivine.jobs.worker", "--job-dir", job.job_dir]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        try:
            with open(job.log_path, "ab") as log:
                proc = subprocess.Popen(
                    command,
                    cwd=job.job_dir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    close_fds=True,
                    start_new_session=True,
                )
        except OSError as exc:
            self.store.update(
                job.job_id,
                strict=False,
                state=JobStatus.FAILED,
                error_kind=ErrorKind.INFRASTRUCTURE,
                message=f"could not start the worker ({python}): {exc}",
            )
            raise HostError(f"could not start a worker process with {python}: {exc}") from exc
        # Reap the child when it ends, so it leaves no zombie while this process lives on (an api
        # user's session) and the Popen object never warns that it was dropped while running.
        threading.Thread(target=proc.wait, name=f"olivine-reap-{proc.pid}", daemon=True).start()
        logger.info("job %s: worker started (pid %d), log %s", job.job_id, proc.pid, job.log_path)
        return self.store.update(
            job.job_id,
            pid=proc.pid,
            host_info={**job.host_info, "pid_start_ticks": process_start_ticks(proc.pid), "python": python},
        )

    def cancel(self, job_id: str, *, timeout_s: float | None = None) -> JobRecord:
        job = self.status(job_id)
        if job.state.is_terminal():
            return job
        grace_s = self.config.cancel_grace_s if timeout_s is None else timeout_s
        message = "cancelled"
        if signal_group(job, signal.SIGTERM):
            logger.info(
                "job %s: SIGTERM sent to worker pid %s; waiting up to %.0fs", job.job_id, job.pid, grace_s
            )
            if not wait_gone(job, grace_s):
                signal_group(job, signal.SIGKILL)
                wait_gone(job, _KILL_WAIT_S)
                message = f"cancelled: the worker did not stop within {grace_s:g}s and was killed"
        elif job.pid is None:
            message = "cancelled before the worker started"
        # A worker that stopped gracefully has written CANCELLED and sealed its export itself; this
        # covers the others (killed after the grace period, or never started).
        final = self.store.update(job.job_id, strict=False, state=JobStatus.CANCELLED, message=message)
        if final.state is JobStatus.CANCELLED:
            close_export(final)
        return final
