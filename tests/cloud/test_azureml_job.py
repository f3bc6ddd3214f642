"""The Azure ML command job, built offline with the real azure-ai-ml SDK: command, inputs, outputs,
environment, compute, tags, and the YAML that ``load_job`` reads back."""

from __future__ import annotations

from pathlib import Path

import pytest

from olivine.hosts.azureml_job import WORKER_COMMAND, JobRequest, build_job, job_yaml

pytestmark = pytest.mark.azure

TS = "2026-12-02-05-33-00"


def _request(tmp_path: Path, **over: object) -> JobRequest:
    fields: dict[str, object] = {
        "job_dir": tmp_path / "job-1",
        "workflow_id": "tiny_mlp",
        "timestamp": TS,
        "job_id": "job-1a2b",
        "compute": "cpu-cluster",
        "datastore": "workspaceblobstore",
        "environment": {"image": "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04"},
        "tags": {"team": "vision"},
        "resources": {"instance_type": "Standard_D4s_v3"},
        "environment_variables": {"PYTHONUNBUFFERED": "1"},
    }
    fields.update(over)
    return JobRequest(**fields)  # type: ignore[arg-type]


def test_azureml_job_binds_output_to_the_spec_layout_and_registers_the_asset(tmp_path: Path) -> None:
    job = build_job(_request(tmp_path))
    out = job.outputs["export"]
    assert out.path == f"azureml://datastores/workspaceblobstore/paths/{TS}/tiny_mlp"
    assert (out.name, out.version, out.mode) == ("tiny_mlp", TS, "rw_mount")
    assert job.inputs["job"].path == str(tmp_path / "job-1")
    assert job.command == WORKER_COMMAND
    assert "python -m olivine.jobs.worker --job-dir" in job.command
    assert job.compute == "cpu-cluster"
    assert job.experiment_name == "olivine"
    assert job.tags == {
        "team": "vision",
        "olivine_job_id": "job-1a2b",
        "workflow_id": "tiny_mlp",
        "export_timestamp": TS,
    }
    assert job.environment.image == "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04"
    assert job.resources.instance_type == "Standard_D4s_v3"
    assert job.environment_variables == {"PYTHONUNBUFFERED": "1"}


def test_azureml_job_yaml_round_trips_through_load_job(tmp_path: Path) -> None:
    from azure.ai.ml import load_job

    request = _request(tmp_path, environment="azureml:olivine-env:3", instance_count=2)
    job = build_job(request)
    path = tmp_path / "job.yaml"
    path.write_text(job_yaml(job, {"job": request.job_dir}))
    back = load_job(path)
    assert back.command == job.command
    assert back.inputs["job"].path == str(request.job_dir)
    assert back.outputs["export"].path == job.outputs["export"].path
    assert back.outputs["export"].name == "tiny_mlp"
    assert back.compute == "cpu-cluster"
    assert str(back.environment).removeprefix("azureml:") == "olivine-env:3"
    assert back.resources.instance_count == 2
    assert back.tags == job.tags
    assert back.experiment_name == "olivine"


def test_azureml_job_builds_environment_from_a_dockerfile(tmp_path: Path) -> None:
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "Dockerfile").write_text("FROM python:3.11\n")
    job = build_job(
        _request(
            tmp_path, environment={"build": {"path": str(tmp_path / "ctx"), "dockerfile_path": "Dockerfile"}}
        )
    )
    assert job.environment.build.path == str(tmp_path / "ctx")
