"""The ``AzureML`` host: the workflow runs as one Azure ML command job (azure-ai-ml), exporting to the
workspace's blob datastore at the spec's layout.

* Datastore: the system's ``datastores`` (default ``workspaceblobstore``) is an Azure ML datastore name.
  A datastore of that name in the workflow or the hosts file wins (e.g. to give its ``az://`` URL and
  credentials); otherwise the workspace says which storage account and container it is, and the job
  exports to ``az://<container>`` with ``DefaultAzureCredential`` (on the compute: its managed identity).
* Submit: :mod:`olivine.hosts.azureml_job` builds the command job (job folder as input, the worker as
  command, output bound to ``azureml://datastores/<datastores>/paths/<timestamp>/<workflow_id>`` and
  registered as data asset ``<workflow_id>``, experiment, tags); ``MLClient.jobs.create_or_update``
  submits it, retried as ``azureml_client`` says (``max_operation_retries``, ``operation_retry_interval``
  doubling).
* Status: the worker's ``status.json`` on the datastore (progress, best metrics), with Azure ML's own job
  state to notice a job that failed or was cancelled before its worker could say so. When the workspace
  cannot be reached, the datastore alone answers. Logs: the log the worker exports. Cancel:
  ``MLClient.jobs.begin_cancel``.
* ``--dry-run`` prints the job's YAML (``azure.ai.ml.load_job`` reads it back) without any network.

Never run against a live workspace from the build machine (it cannot reach Azure): see the README.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from olivine.config.azureml import AzureMLClientConfig
from olivine.config.systems import AzureMLConfig
from olivine.errors import ConfigError, HostError, MissingDependencyError, OlivineError
from olivine.hosts.azureml_job import JobRequest, build_job, job_yaml
from olivine.hosts.base import Host
from olivine.jobs.bundle import Bundle
from olivine.jobs.choice import DatastoreChoice
from olivine.jobs.folder import JobFolder
from olivine.jobs.records import ErrorKind, JobRecord, JobSpec, JobStatus
from olivine.keyvault import HF_LOGIN_ENV, KEYVAULT_ENV

if TYPE_CHECKING:
    from olivine.engine.resolve import ResolvedWorkflow
    from olivine.jobs.profiles import Profiles

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: Azure ML job states -> Olivine's (None: not final; the worker's status says more).
_FINAL = {
    "completed": JobStatus.SUCCEEDED,
    "failed": JobStatus.FAILED,
    "notresponding": JobStatus.FAILED,
    "canceled": JobStatus.CANCELLED,
}


class AzureMLHost(Host):
    """Runs each job as an Azure ML command job."""

    config_type = AzureMLConfig
    detached = True
    config: AzureMLConfig

    def describe(self) -> str:
        client = self.config.azureml_client_config
        where = (client.workspace_name or client.aml_config_path) if client else "?"
        return f"host '{self.name}' (AzureML: compute '{self.config.aml_compute}' in workspace '{where}')"

    def check(self) -> None:
        self.client_config()
        self._check_hf_token()
        self._check_sdk()

    def _check_hf_token(self) -> None:
        client = self.config.azureml_client_config
        if self.config.hf_token and (client is None or not client.keyvault_name):
            raise ConfigError(
                "hf_token: true needs azureml_client.keyvault_name (the job reads the Hugging Face token "
                "from secret 'hf-token' of that Key Vault at run time; the token never travels with "
                "the job)",
                path=f"systems.{self.name}.hf_token",
            )

    def _check_sdk(self) -> None:
        try:
            import azure.ai.ml  # noqa: F401
        except ModuleNotFoundError as exc:
            raise MissingDependencyError(
                f"the AzureML host needs the package '{exc.name}': pip install 'olivine[azureml]'"
            ) from None

    def client_config(self) -> AzureMLClientConfig:
        """The workspace (``azureml_client`` of the system, the workflow or the hosts file)."""
        if self.config.azureml_client_config is None:
            raise ConfigError(
                f"AzureML host '{self.name}' names no workspace: add azureml_client (subscription_id, "
                "resource_group, workspace_name, or aml_config_path) to the workflow or the hosts file",
                path="azureml_client",
            )
        return self.config.azureml_client_config

    # -- datastore --------------------------------------------------------------------------------
    def resolve_datastore(
        self, name: str, profiles: Profiles, wf: ResolvedWorkflow | None, *, dry_run: bool
    ) -> DatastoreChoice | None:
        """The Azure ML datastore ``name`` as an ``az://`` datastore (None: ``name`` is defined in the
        workflow or the hosts file, which then decides). A dry run asks the workspace nothing."""
        if not dry_run:
            self.check()  # a missing workspace or SDK is the first thing to say
        if name != self.config.datastores or profiles.has_datastore(name):
            return None
        if wf is not None and name in wf.config.datastores:
            return None
        if dry_run:  # the workspace is not asked: the plan shows the name, the YAML the binding
            return DatastoreChoice(name, f"azureml://datastores/{name}", {})
        from olivine.azureml_client import ml_client, one_line

        client = ml_client(self.client_config())
        try:
            store = self._retrying(lambda: client.datastores.get(name))
        except Exception as exc:
            raise HostError(f"Azure ML datastore '{name}': {one_line(exc)}") from None
        account, container = getattr(store, "account_name", None), getattr(store, "container_name", None)
        if not account or not container:
            raise HostError(f"Azure ML datastore '{name}' is not a blob container ({type(store).__name__})")
        options: dict[str, Any] = {"account_name": account}
        endpoint = getattr(store, "endpoint", None)
        if endpoint and endpoint != "core.windows.net":
            options["account_host"] = f"{account}.blob.{endpoint}"
        return DatastoreChoice(name, f"az://{container}", options)

    # -- the job ----------------------------------------------------------------------------------
    def job_request(self, job_dir: Path, spec: JobSpec) -> JobRequest:
        """What the command job is built from, for ``spec`` in ``job_dir``."""
        cfg = self.config
        env_vars = {"PYTHONUNBUFFERED": "1"}
        client = cfg.azureml_client_config
        if cfg.hf_token and client is not None and client.keyvault_name:
            # Olive's convention: the job reads the Hugging Face token from this Key Vault (the
            # worker, at run time: olivine.keyvault); only the vault's name travels with the job.
            env_vars.update({HF_LOGIN_ENV: "1", KEYVAULT_ENV: client.keyvault_name})
        code = Path(__file__).resolve().parents[2] if cfg.is_dev else None  # Olivine's own source
        return JobRequest(
            job_dir=job_dir,
            workflow_id=spec.workflow_id,
            timestamp=spec.export_timestamp,
            job_id=spec.job_id,
            compute=cfg.aml_compute,
            datastore=cfg.datastores,
            environment=cfg.environment(),
            experiment=cfg.experiment_name,
            tags=cfg.tags,
            resources=cfg.resources,
            instance_count=cfg.instance_count,
            environment_variables=env_vars,
            code=code,
        )

    def dry_run_details(self, spec: JobSpec) -> str:
        """The Azure ML job a submission of ``spec`` would send, as YAML (no network). The workspace is
        not needed to build it; a missing one is noted (submitting would refuse)."""
        self._check_sdk()
        if self.config.azureml_client_config is not None:
            self._check_hf_token()  # a config mistake, not a missing workspace: refused like submitting
        note = ""
        try:
            self.check()
        except ConfigError as exc:
            note = f"note: submitting would fail: {exc}\n"
        request = self.job_request(self.store.job_dir(spec.job_id), spec)
        text = job_yaml(build_job(request), {"job": request.job_dir})
        return f"{note}Azure ML job (azure.ai.ml.load_job reads this):\n{text}"

    def submit(self, bundle: Bundle, job: JobRecord, spec: JobSpec) -> JobRecord:
        folder = JobFolder.of(job)
        if folder is None:
            raise HostError(f"job {job.job_id} has no job folder")
        current = self.store.get(job.job_id)
        if current.state.is_terminal():
            return current
        from olivine.azureml_client import one_line

        aml_job = build_job(self.job_request(folder.root, spec))
        try:
            created = self._create(aml_job)
        except Exception as exc:
            message = f"Azure ML did not take the job: {one_line(exc)}"
            self.store.update(
                job.job_id,
                strict=False,
                state=JobStatus.FAILED,
                error_kind=ErrorKind.INFRASTRUCTURE,
                message=message,
            )
            raise HostError(message) from None
        info = {
            "aml_job": getattr(created, "name", aml_job.name),
            "studio_url": getattr(created, "studio_url", None),
        }
        logger.info(
            "job %s: Azure ML job %s (%s)", job.job_id, info["aml_job"], info["studio_url"] or "no URL"
        )
        return self.store.update(
            job.job_id, host_info={**current.host_info, **info}, message="submitted to Azure ML"
        )

    def _create(self, aml_job: Any) -> Any:
        """Hand the job to Azure ML (the one step that needs the service)."""
        from olivine.azureml_client import ml_client

        client = ml_client(self.client_config())
        return self._retrying(lambda: client.jobs.create_or_update(aml_job))

    # -- reading a job ----------------------------------------------------------------------------
    def observe(self, job: JobRecord) -> JobRecord:
        if job.state.is_terminal():
            return job
        observed = self._with_export_status(job)
        if observed.state.is_terminal():
            return observed
        aml_state = self._aml_state(job)
        final = _FINAL.get(aml_state or "")
        if final is None:
            return observed
        again = self._with_export_status(job)  # the worker may have sealed its export just now
        if again.state.is_terminal():
            return again
        if final is JobStatus.CANCELLED:
            return again.evolve(
                state=JobStatus.CANCELLED, error_kind=ErrorKind.CANCELLED, message="cancelled in Azure ML"
            )
        return again.evolve(
            state=JobStatus.FAILED,
            error_kind=ErrorKind.INFRASTRUCTURE,
            message=f"the Azure ML job ended ({aml_state}) without its worker reporting a result",
        )

    def _with_export_status(self, job: JobRecord) -> JobRecord:
        from olivine.jobs.exports import open_job_export
        from olivine.jobs.remote import read_export_status
        from olivine.jobs.status import apply_status

        if job.export_root is None:
            return job
        try:
            status = read_export_status(open_job_export(job))
        except OlivineError as exc:
            logger.debug("job %s: no status from the datastore: %s", job.job_id, exc)
            return job
        return apply_status(job, status) if status is not None else job

    def _aml_state(self, job: JobRecord) -> str | None:
        """Azure ML's state of the job, lower case; None when the workspace cannot be asked."""
        name = job.host_info.get("aml_job")
        if not name:
            return None
        from olivine.azureml_client import ml_client, one_line

        try:
            return str(ml_client(self.client_config()).jobs.get(name).status).lower()
        except Exception as exc:
            logger.info("job %s: Azure ML unreachable (%s); the datastore answers", job.job_id, one_line(exc))
            return None

    def logs(self, job_id: str, *, follow: bool = False) -> Iterator[str]:
        job = self.store.get(job_id)
        if job.export_root is None:
            return iter(())
        return self._export_lines(job, follow)

    def cancel(self, job_id: str, *, timeout_s: float | None = None) -> JobRecord:
        job = self.monitor(self.store.get(job_id))
        if job.state.is_terminal():
            return job
        name = job.host_info.get("aml_job")
        if name:
            from olivine.azureml_client import ml_client, one_line

            try:
                self._retrying(lambda: ml_client(self.client_config()).jobs.begin_cancel(name))
            except Exception as exc:
                raise HostError(f"could not cancel Azure ML job {name}: {one_line(exc)}") from None
        final = self.store.update(job_id, strict=False, state=JobStatus.CANCELLED, message="cancelled")
        if final.state is JobStatus.CANCELLED:
            self.close_export(final)
        return final

    def _retrying(self, call: Callable[[], T]) -> T:
        """``call()`` retried on service errors as ``azureml_client`` says (Olive's retry_func)."""
        from azure.core.exceptions import ServiceRequestError, ServiceResponseError

        cfg = self.client_config()
        delay = float(cfg.operation_retry_interval)
        for attempt in range(cfg.max_operation_retries + 1):
            try:
                return call()
            except (ServiceRequestError, ServiceResponseError):
                if attempt == cfg.max_operation_retries:
                    raise
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")
