"""The Azure ML command job that runs one Olivine job, built with the real ``azure-ai-ml`` SDK.

One command job per workflow (Olive built a one-step pipeline):

* input ``job``: the job folder (``job.json`` and the bundle), uploaded by the SDK at submission;
* command: copy it to a writable folder and run the Olivine worker there, exactly as a LocalWorker
  does (:data:`WORKER_COMMAND`); the worker exports to the workspace's blob datastore incrementally;
* output ``export``: ``azureml://datastores/<datastores>/paths/<yyyy-mm-dd-hh-mm-ss>/<workflow_id>``,
  the same folder the worker exports to, registered as data asset ``<workflow_id>`` (version: the
  timestamp), so studio shows it beside the job;
* environment (``aml_environment_config`` by reference, or ``aml_docker_config``), compute, resources,
  instance count, experiment, tags.

:func:`job_yaml` is what ``olivine run --dry-run`` prints; ``azure.ai.ml.load_job`` reads it back.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

#: The command of the job; ``${{inputs.job}}`` is the job folder as Azure ML hands it to the job. The
#: worker writes its log to the job folder itself (``--log-file``) and exports it from there, as a
#: LocalWorker's log; Azure ML keeps stdout/stderr as the job's own log too.
WORKER_COMMAND = (
    "rm -rf olivine-job && cp -r ${{inputs.job}} olivine-job && "
    "python -m olivine.jobs.worker --job-dir olivine-job --log-file"
)
DEFAULT_EXPERIMENT = "olivine"


def output_path(datastore: str, timestamp: str, workflow_id: str) -> str:
    """The spec's export folder as an Azure ML datastore URI."""
    return f"azureml://datastores/{datastore}/paths/{timestamp}/{workflow_id}"


@dataclass(frozen=True)
class JobRequest:
    """Everything the command job is built from (no credentials: they never travel with a job).

    Attributes:
        job_dir: the local job folder (job.json, bundle): the job's ``job`` input.
        workflow_id / timestamp / job_id: the export and the Olivine job.
        compute / datastore / experiment / tags / resources / instance_count: Olive's system fields.
        environment: an ``azureml:<name>:<version>`` reference or ``{"image": ..., "conda_file": ...}``
            or ``{"build": {"path": ..., "dockerfile_path": ...}}`` (+ optional name/version).
        environment_variables: set for the worker (e.g. the storage account of the datastore).
        code: a folder shipped as the job's code (``is_dev``: Olivine's own source), or None.
    """

    job_dir: Path
    workflow_id: str
    timestamp: str
    job_id: str
    compute: str
    datastore: str
    environment: str | Mapping[str, Any]
    experiment: str = DEFAULT_EXPERIMENT
    tags: Mapping[str, str] = field(default_factory=dict)
    resources: Mapping[str, Any] | None = None
    instance_count: int = 1
    environment_variables: Mapping[str, str] = field(default_factory=dict)
    code: Path | None = None


def build_job(request: JobRequest) -> Any:
    """The :class:`azure.ai.ml.entities.Command` job for ``request`` (built offline)."""
    from azure.ai.ml import Input, Output, command
    from azure.ai.ml.constants import AssetTypes, InputOutputModes
    from azure.ai.ml.entities import ManagedIdentityConfiguration

    download = InputOutputModes.DOWNLOAD
    tags = {
        **request.tags,
        "olivine_job_id": request.job_id,
        "workflow_id": request.workflow_id,
        "export_timestamp": request.timestamp,
    }
    builder = command(
        name=_job_name(request.job_id),
        display_name=f"olivine {request.workflow_id} {request.timestamp}",
        description=f"Olivine workflow '{request.workflow_id}' (job {request.job_id})",
        experiment_name=request.experiment,
        tags=tags,
        command=WORKER_COMMAND,
        code=str(request.code) if request.code is not None else None,
        inputs={"job": Input(type=AssetTypes.URI_FOLDER, path=str(request.job_dir), mode=download)},
        outputs={
            "export": Output(
                type=AssetTypes.URI_FOLDER,
                path=output_path(request.datastore, request.timestamp, request.workflow_id),
                mode=InputOutputModes.RW_MOUNT,
                name=request.workflow_id,
                version=request.timestamp,
            )
        },
        environment=_environment(request.environment),
        environment_variables=dict(request.environment_variables),
        compute=request.compute,
        instance_count=request.instance_count,
        resources=dict(request.resources) if request.resources else None,
        # The worker writes to the blob datastore with the compute's identity (DefaultAzureCredential).
        identity=ManagedIdentityConfiguration(),
    )
    return builder._to_job()


def job_yaml(job: Any, local_inputs: Mapping[str, Path]) -> str:
    """The job as YAML that ``azure.ai.ml.load_job`` reads back.

    The SDK writes a not-yet-uploaded local input as ``azureml:<path>`` (an asset reference); those are
    written back as the local paths they are, as a user's job YAML would have them.
    """
    stream = io.StringIO()
    job.dump(stream)
    data = yaml.safe_load(stream.getvalue())
    for name, path in local_inputs.items():
        if name in data.get("inputs", {}):
            data["inputs"][name]["path"] = str(path)
    text: str = yaml.safe_dump(data, sort_keys=False, width=100)
    return text


def _environment(spec: str | Mapping[str, Any]) -> Any:
    if isinstance(spec, str):
        return spec
    from azure.ai.ml.entities import BuildContext, Environment

    build = spec.get("build")
    return Environment(
        name=spec.get("name"),
        version=spec.get("version"),
        image=spec.get("image"),
        conda_file=spec.get("conda_file"),
        build=BuildContext(**build) if build else None,
    )


def _job_name(job_id: str) -> str:
    """An Azure ML job name from the Olivine job id (letters, digits, ``_``; unique per workspace)."""
    return "olivine_" + "".join(c if c.isalnum() else "_" for c in job_id)
