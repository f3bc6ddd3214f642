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
from olivine.hosts.local_process import LocalProcessHost
from olivine.hosts.process import process_start_ticks, signal_group, wait_gone, worker_pid
from olivine.jobs.bundle import Bundle
from olivine.jobs.folder import JobFolder
from olivine.jobs.records import ErrorKind, JobRecord, JobSpec, JobStatus

logger = logging.getLogger(__name__)

# After SIGKILL the kernel ends the process at once; this only bounds waiting for /proc to show it.
_KILL_WAIT_S = 5.0


class LocalWorkerHost(LocalProcessHost):
    """Runs each job in a detached ``python -m olivine.jobs.worker`` process."""

    config_type = LocalWorkerConfig
    detached = True
    config: LocalWorkerConfig

    def describe(self) -> str:
        return f"host '{self.name}' (LocalWorker: a detached worker process on this machine)"

    def submit(self, bundle: Bundle, job: JobRecord, spec: JobSpec) -> JobRecord:
        folder = JobFolder.of(job)
        if folder is None:
            raise HostError(f"job {job.job_id} has no job folder")
        current = self.store.get(job.job_id)
        if current.state.is_terminal():  # cancelled while the bundle was being built
            return current
        python = self.config.python or sys.executable
        command = [python, "-m", "olivine.jobs.worker", "--job-dir", str(folder.root)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        try:
            with open(folder.log, "ab") as log:
                proc = subprocess.Popen(
                    command,
                    cwd=folder.root,
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
        logger.info("job %s: worker started (pid %d), log %s", job.job_id, proc.pid, folder.log)
        info = {"pid": proc.pid, "pid_start_ticks": process_start_ticks(proc.pid), "python": python}
        return self.store.update(job.job_id, host_info={**current.host_info, **info})

    def cancel(self, job_id: str, *, timeout_s: float | None = None) -> JobRecord:
        job = self.monitor(self.store.get(job_id))
        if job.state.is_terminal():
            return job
        grace_s = self.config.cancel_grace_s if timeout_s is None else timeout_s
        if not signal_group(job, signal.SIGTERM):
            return self._cancel_unstarted(job, "cancelled before the worker started")
        logger.info(
            "job %s: SIGTERM sent to worker pid %s; waiting up to %.0fs", job.job_id, worker_pid(job), grace_s
        )
        message = "cancelled"
        if not wait_gone(job, grace_s):
            signal_group(job, signal.SIGKILL)
            wait_gone(job, _KILL_WAIT_S)
            message = f"cancelled: the worker did not stop within {grace_s:g}s and was killed"
        # A worker that stopped gracefully wrote its final status and sealed its export itself.
        observed = self._with_status(self.store.get(job_id))
        if observed.state.is_terminal():
            return self.store.sync(observed)[1]
        final = self.store.update(job.job_id, strict=False, state=JobStatus.CANCELLED, message=message)
        if final.state is JobStatus.CANCELLED and final.message == message:
            self.close_export(final)
        return final
