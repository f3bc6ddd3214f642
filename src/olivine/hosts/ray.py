"""The ``Ray`` host: each job is a Ray job on a cluster, submitted through the Jobs API.

``submit`` hands the job to ``JobSubmissionClient`` with Olivine's job id as the Ray submission id (a
repeated submission is idempotent) and returns; the worker (``python -m olivine.jobs.worker``) runs as
the job's entrypoint on the cluster, with the job folder as its ``working_dir``, so it keeps running
after the submitter exits. A bundle larger than ``working_dir_max_bytes`` (Ray caps ``working_dir`` at
about 100 MiB) is uploaded once to the job's datastore, content-addressed, and downloaded by the worker.

What the host knows of a job comes from Ray's job state and logs, and from the worker's status and log on
the datastore: when the head is gone or was restarted (Ray keeps job history in the head only), status
and logs answer from the datastore alone. Cancel asks Ray to stop the job: SIGTERM to the worker, which
stops after the running step and seals its export, then SIGKILL after ``cancel_grace_s`` (passed to the
job as ``RAY_JOB_STOP_WAIT_TIME_S``).

Every call to the cluster (submit, status, logs, cancel, list, the one-time cluster check) goes through
:class:`olivine.hosts.ray_jobs_api.RayJobsAPI` (the Jobs REST API over plain HTTP, with Ray's token
authentication when ``RAY_AUTH_MODE=token``), so no Olivine command imports Ray's SDK. Without Ray
installed, using a Ray host is still one error with the install hint (``pip install 'olivine[ray]'``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import math
import shlex
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from olivine.config.systems import RayConfig
from olivine.errors import HostError
from olivine.hosts.base import Host
from olivine.hosts.ray_jobs_api import RayAuthError, RayJobInfo, RayJobsAPI
from olivine.jobs.bundle import Bundle, upload_bundle
from olivine.jobs.exports import open_job_export
from olivine.jobs.folder import JobFolder
from olivine.jobs.records import ErrorKind, JobRecord, JobSpec, JobStatus
from olivine.jobs.remote import is_stale, read_export_status
from olivine.jobs.status import WorkerStatus, apply_status
from olivine.jobs.worker import write_spec

if TYPE_CHECKING:
    from olivine.engine.resolve import ResolvedWorkflow

if importlib.util.find_spec("ray") is None:  # the registry turns this into the install hint
    raise ModuleNotFoundError("No module named 'ray'", name="ray")

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'olivine[ray]'"
#: Errors of an unreachable head or an unknown job (urllib's errors are OSErrors; an HTTP error such as
#: 404 is a RayRequestError, a RuntimeError; a garbled answer a ValueError). Not RayAuthError: a
#: cluster that refuses us is not a cluster that is gone.
_UNREACHABLE = (OSError, RuntimeError, ValueError)
_LOG_POLL_S = 1.0
_CHECK_TTL_S = 24 * 3600.0
_CHECK_TIMEOUT_S = 300.0
_AGENT_WAIT_S = 60.0
#: Datastore reads at once when a listing reads the exported status of many unfinished jobs.
_EXPORT_READERS = 8
_RAY_TERMINAL = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})


class RayHost(Host):
    """Runs each job as a Ray job on the cluster at ``address``."""

    config_type = RayConfig
    detached = True
    config: RayConfig

    def describe(self) -> str:
        return f"host '{self.name}' (Ray cluster at {self.config.address})"

    def new_host_info(self) -> dict[str, Any]:
        return {"address": self.config.address}

    def search_spread(self, wf: ResolvedWorkflow) -> dict[str, Any] | None:
        """With ``search_workers``, the job's search runs each candidate as a Ray task (see
        :mod:`olivine.engine.ray_executor`); refused where it cannot do what it promises."""
        workers = self.config.search_workers
        if not workers:
            return None
        from olivine.engine.executor import SpreadSettings, spread_task_cpus

        in_workflow = self.name in wf.config.systems
        key = f"{'systems' if in_workflow else 'hosts'}.{self.name}.search_workers"
        file = str(wf.config_path) if in_workflow and wf.config_path else None
        cpus = spread_task_cpus(
            wf,
            self.config.search_task_cpus,
            where="over the cluster",
            each="each Ray task",
            key=key,
            file=file,
        )
        if wf.search is not None and wf.search.sampler == "tpe":
            logger.info("the tpe sampler proposes from each result: candidates run one at a time on Ray")
        return SpreadSettings(workers=workers, num_cpus=cpus, timing=self.config.search_timing).to_json()

    @cached_property
    def api(self) -> RayJobsAPI:
        """The cluster's Jobs API (it holds the auth token, when there is one, and nothing else does)."""
        return RayJobsAPI(self.config.address)

    # -- submitting ---------------------------------------------------------------------------------
    def check(self) -> None:
        """Olivine must be importable on the cluster: checked once per cluster and environment (a
        small Ray job), remembered for a day beside the job store."""
        key = self._env_key()
        checks = self._checks_file()
        known = _read_json(checks)
        seen = known.get(key)
        if isinstance(seen, dict) and time.time() - float(seen.get("at", 0)) < _CHECK_TTL_S:
            return
        version = self._run_check()
        known[key] = {"at": time.time(), "olivine": version, "address": self.config.address}
        checks.parent.mkdir(parents=True, exist_ok=True)
        tmp = checks.with_name(f".{checks.name}.{uuid.uuid4().hex}")
        tmp.write_text(json.dumps(known, indent=2), encoding="utf-8")
        tmp.replace(checks)

    def _run_check(self) -> str:
        code = "import olivine, sys; print('olivine', olivine.__version__, sys.executable)"
        entrypoint = f"{shlex.quote(self.config.python)} -c {shlex.quote(code)}"
        env = {k: v for k, v in self.config.runtime_env.items()}
        check_id = f"olivine-check-{uuid.uuid4().hex[:12]}"
        try:
            self._submit_when_ready(entrypoint=entrypoint, submission_id=check_id, runtime_env=env or None)
            deadline = time.monotonic() + _CHECK_TIMEOUT_S
            while (status := self.api.get_job_info(check_id).status) not in _RAY_TERMINAL:
                if time.monotonic() > deadline:
                    self.api.stop_job(check_id)
                    raise HostError(
                        f"checking for Olivine on the Ray cluster at {self.config.address} timed out"
                    )
                time.sleep(0.2)
            output = self.api.get_job_logs(check_id)
        except _UNREACHABLE as exc:
            raise HostError(f"the Ray cluster at {self.config.address} is not reachable: {exc}") from exc
        found = [line.split() for line in output.splitlines() if line.startswith("olivine ")]
        if status != "SUCCEEDED" or not found:
            last = next((ln for ln in reversed(output.splitlines()) if ln.strip()), "no output")
            raise HostError(
                f"Olivine is not importable on the Ray cluster at {self.config.address} with "
                f"'{self.config.python}' ({last.strip()}); install it in the cluster's image or add it "
                "to the host's runtime_env pip (README: 'The Ray host')"
            )
        version = found[-1][1]
        from olivine import __version__

        if version != __version__:
            logger.warning("the Ray cluster has Olivine %s, this machine %s", version, __version__)
        return version

    def _env_key(self) -> str:
        ident = {"address": self.config.address, "python": self.config.python, "env": self.config.runtime_env}
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()

    def _checks_file(self) -> Path:
        return self.store.path.parent / "ray-checks.json"

    def submit(self, bundle: Bundle, job: JobRecord, spec: JobSpec) -> JobRecord:
        folder = JobFolder.of(job)
        if folder is None:
            raise HostError(f"job {job.job_id} has no job folder")
        try:
            working_dir, via = self._stage(bundle, job, spec, folder)
            self._submit_job(job, working_dir)
        except HostError as exc:
            self.store.update(
                job.job_id,
                strict=False,
                state=JobStatus.FAILED,
                error_kind=ErrorKind.INFRASTRUCTURE,
                message=f"could not submit to Ray: {exc}",
            )
            raise
        logger.info(
            "job %s: submitted to the Ray cluster at %s (bundle via %s)", job.job_id, self.config.address, via
        )
        current = self.store.get(job.job_id)
        return self.store.update(job.job_id, host_info={**current.host_info, "bundle_via": via})

    def _stage(self, bundle: Bundle, job: JobRecord, spec: JobSpec, folder: JobFolder) -> tuple[Path, str]:
        """The folder Ray ships as ``working_dir``: the job folder itself when the bundle is small, else
        a folder with only the spec, which names the bundle uploaded to the datastore."""
        if bundle.size_bytes <= self.config.working_dir_max_bytes:
            return folder.root, "working_dir"
        datastore = open_job_export(job).datastore
        rel, digest = upload_bundle(datastore, bundle, folder.bundle_tar)
        folder.bundle_tar.unlink(missing_ok=True)
        shipped = folder.shipped
        write_spec(shipped, JobSpec(**{**spec.to_json(), "bundle_url": rel, "bundle_sha256": digest}))
        return shipped, "datastore"

    def _submit_job(self, job: JobRecord, working_dir: Path) -> None:
        env = dict(self.config.runtime_env)
        env["working_dir"] = str(working_dir)
        env["env_vars"] = {
            **env.get("env_vars", {}),
            "PYTHONUNBUFFERED": "1",
            # Ray's supervisor reads it from the job's environment: the grace between SIGTERM and SIGKILL.
            "RAY_JOB_STOP_WAIT_TIME_S": str(math.ceil(self.config.cancel_grace_s)),
        }
        entrypoint = f"{shlex.quote(self.config.python)} -m olivine.jobs.worker --job-dir . --log-file"
        options: dict[str, Any] = {}
        if self.config.entrypoint_num_cpus is not None:
            options["entrypoint_num_cpus"] = self.config.entrypoint_num_cpus
        if self.config.entrypoint_memory is not None:
            options["entrypoint_memory"] = self.config.entrypoint_memory
        if self.config.entrypoint_resources:
            options["entrypoint_resources"] = self.config.entrypoint_resources
        try:
            self._submit_when_ready(
                entrypoint=entrypoint,
                submission_id=job.job_id,
                runtime_env=env,
                metadata={"olivine_workflow_id": job.workflow_id},
                **options,
            )
        except RuntimeError as exc:
            if "already exists" in str(exc):
                return  # submitted before: the submission id makes it idempotent
            raise HostError(str(exc)) from exc
        except OSError as exc:
            raise HostError(f"the Ray cluster at {self.config.address} is not reachable: {exc}") from exc

    def _submit_when_ready(self, **kwargs: Any) -> None:
        """``submit_job``, retried while a freshly (re)started head has no job agent yet (HTTP 500)."""
        deadline = time.monotonic() + _AGENT_WAIT_S
        while True:
            try:
                self.api.submit_job(**kwargs)
                return
            except RuntimeError as exc:
                if "No available agent" not in str(exc) or time.monotonic() > deadline:
                    raise
                logger.info("the Ray head at %s has no job agent yet; retrying", self.config.address)
                time.sleep(1.0)

    # -- reading ------------------------------------------------------------------------------------
    def observe(self, job: JobRecord) -> JobRecord:
        if job.state.is_terminal():
            return job
        details = self._details(job.job_id)  # first: once Ray says ended, the worker wrote all it will
        exported = self._exported_status(job)
        return _verdict(job, details, exported, self.config.address)

    def observe_all(self, jobs: list[JobRecord]) -> list[JobRecord]:
        """:meth:`observe` for many jobs with one ``list_jobs`` call to the cluster (not one call per job).

        Each unfinished job's verdict is :meth:`observe`'s, so ``list`` and ``status`` agree: the worker's
        exported status comes first (Ray still says RUNNING for a moment after the worker wrote its
        final status and while its process exits), and Ray's word that a job ended is checked against
        it (a Ray SUCCEEDED without the worker's final status is a worker that died).
        """
        try:
            known: dict[str, RayJobInfo] | None = {
                d.submission_id: d for d in self.api.list_jobs() if d.submission_id
            }
        except _UNREACHABLE:
            known = None
        except RayAuthError as exc:  # a listing still shows what the store knows
            logger.warning("%s: %s", self.describe(), exc)
            return jobs

        def verdict(job: JobRecord) -> JobRecord:
            if job.state.is_terminal():
                return job
            details = known.get(job.job_id) if known is not None else None
            return _verdict(job, details, self._exported_status(job), self.config.address)

        with ThreadPoolExecutor(max_workers=_EXPORT_READERS) as pool:
            return list(pool.map(verdict, jobs))

    def _details(self, job_id: str) -> RayJobInfo | None:
        try:
            return self.api.get_job_info(job_id)
        except _UNREACHABLE:
            return None  # the head is gone, or restarted and lost the job's history

    def _exported_status(self, job: JobRecord) -> WorkerStatus | None:
        try:
            return read_export_status(open_job_export(job))
        except Exception as exc:
            logger.debug("job %s: no exported status: %s", job.job_id, exc)
            return None

    def logs(self, job_id: str, *, follow: bool = False) -> Iterator[str]:
        job = self.store.get(job_id)
        try:
            first = self.api.get_job_logs(job.job_id)
        except _UNREACHABLE:
            if job.export_root is None:
                return iter(())
            return self._export_lines(job, follow)
        return self._ray_lines(job.job_id, first, follow)

    def _ray_lines(self, job_id: str, text: str, follow: bool) -> Iterator[str]:
        done_lines = 0
        while True:
            finished = not follow or self.status(job_id).state.is_terminal()
            lines = text.split("\n")
            complete, partial = lines[:-1], lines[-1]
            yield from complete[done_lines:]
            done_lines = len(complete)
            if finished:
                if partial:
                    yield partial
                return
            time.sleep(_LOG_POLL_S)
            try:
                text = self.api.get_job_logs(job_id)
            except _UNREACHABLE:
                return  # the head went away while following: the exported log has the rest

    # -- changing -----------------------------------------------------------------------------------
    def cancel(self, job_id: str, *, timeout_s: float | None = None) -> JobRecord:
        """Ask Ray to stop the job and wait for it to end (the SIGTERM-to-SIGKILL grace is the host's
        ``cancel_grace_s``, fixed when the job was submitted; ``timeout_s`` only lengthens the wait)."""
        job = self.monitor(self.store.get(job_id))
        if job.state.is_terminal():
            return job
        try:
            self.api.stop_job(job.job_id)
        except _UNREACHABLE as exc:
            if self._details(job.job_id) is not None:
                raise HostError(f"could not stop Ray job {job.job_id}: {exc}") from exc
            # Ray does not know the job (its head restarted): nothing runs it any more.
            final = self.store.update(
                job.job_id, strict=False, state=JobStatus.CANCELLED, message="cancelled"
            )
            self.close_export(final)
            return final
        deadline = time.monotonic() + max(timeout_s or 0.0, self.config.cancel_grace_s) + 15.0
        while time.monotonic() < deadline:
            details = self._details(job.job_id)
            if details is None or details.status in _RAY_TERMINAL:
                break
            time.sleep(0.2)
        return self.monitor(self.store.get(job_id))


def _verdict(
    job: JobRecord, details: RayJobInfo | None, exported: WorkerStatus | None, address: str
) -> JobRecord:
    observed = apply_status(job, exported) if exported is not None else job
    if observed.state.is_terminal():
        return observed  # the worker's own verdict: its export is sealed
    if details is None:
        if exported is not None and is_stale(exported):
            return observed.evolve(
                state=JobStatus.FAILED,
                error_kind=ErrorKind.INFRASTRUCTURE,
                message=f"worker died: no news since {exported.updated_at} and the Ray cluster at {address} "
                "does not know the job (its head was stopped or restarted)",
            )
        return observed
    ray_state = details.status
    if ray_state not in _RAY_TERMINAL:
        # RUNNING means the worker runs (its status says so), not that Ray started the entrypoint:
        # the interpreter may still be importing, and a stop request then finds no handler yet.
        return observed
    # Ray says the job ended but the worker wrote no final status: it was killed or crashed.
    if ray_state == "STOPPED":
        return observed.evolve(
            state=JobStatus.CANCELLED,
            message="cancelled: the worker did not stop in its grace period and was killed",
        )
    return observed.evolve(
        state=JobStatus.FAILED,
        error_kind=ErrorKind.INFRASTRUCTURE,
        message=f"worker died: Ray job {ray_state}: {details.message or 'no message'}",
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
