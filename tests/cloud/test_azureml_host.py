"""The AzureML host, offline: ``--dry-run`` prints the job YAML (load_job reads it back), missing or
unreachable workspaces are one error line, and the worker side runs locally exactly as the Azure ML job's
command would run it, exporting to Azurite. Azure ML itself cannot be reached from here: the one step
that needs it (``AzureMLHost._create``, handing the job to the service) is replaced in the last test by
running the job's command on this machine."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloud_servers import CONTAINER, Azurite, fresh_prefix
from olivine.datastores import Datastore
from tiny_models import write_onnx_mlp

pytestmark = pytest.mark.azure

WORKSPACE = {
    "subscription_id": "00000000-0000-0000-0000-000000000000",
    "resource_group": "rg",
    "workspace_name": "ws",
}
TS = r"\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}"


def _config(tmp_path: Path, *, client: dict[str, Any] | None = WORKSPACE, **system: Any) -> Path:
    cfg: dict[str, Any] = {
        "workflow_id": "aml_mlp",
        "input_model": write_onnx_mlp(tmp_path / "mlp"),
        "systems": {
            "aml": {
                "type": "AzureML",
                "aml_compute": "cpu-cluster",
                "aml_environment_config": {"name": "olivine-env", "version": "3"},
                "tags": {"team": "vision"},
                **system,
            }
        },
        "evaluators": {
            "e": {"metrics": [{"name": "size", "type": "size_on_disk", "sub_types": [{"name": "bytes"}]}]}
        },
        "passes": {"quantize": {"type": "OnnxDynamicQuantization"}},
        "engine": {"evaluator": "e"},
        "workflow_host": "aml",
    }
    if client is not None:
        cfg["azureml_client"] = client
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    return path


def _cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "olivine", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "OLIVINE_HOME": str(home), **(env or {})},
        timeout=300,
    )


def test_azureml_dry_run_prints_the_job_yaml_bound_to_the_spec_layout(tmp_path: Path) -> None:
    from azure.ai.ml import load_job

    done = _cli(tmp_path, "run", "--config", str(_config(tmp_path)), "--dry-run")
    assert done.returncode == 0, done.stderr
    assert re.search(rf"path: azureml://datastores/workspaceblobstore/paths/{TS}/aml_mlp\n", done.stdout)
    text = done.stdout.split("load_job reads this):\n", 1)[1]
    (tmp_path / "job.yaml").write_text(text)
    job = load_job(tmp_path / "job.yaml")
    assert job.compute == "cpu-cluster"
    assert str(job.environment).removeprefix("azureml:") == "olivine-env:3"
    assert "python -m olivine.jobs.worker --job-dir" in job.command
    assert job.outputs["export"].name == "aml_mlp"
    assert re.fullmatch(TS, job.outputs["export"].version)
    assert job.tags["team"] == "vision" and job.tags["workflow_id"] == "aml_mlp"
    assert job.experiment_name == "olivine"
    assert not list((tmp_path / "home").rglob("job.json"))  # a dry run writes nothing


def test_azureml_without_workspace_is_one_error_line(tmp_path: Path) -> None:
    config = str(_config(tmp_path, client=None))
    done = _cli(tmp_path, "run", "--config", config)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "azureml_client" in lines[0] and "Traceback" not in done.stderr
    # A dry run needs no workspace to show the job; it says that submitting would fail.
    dry = _cli(tmp_path, "run", "--config", config, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "note: submitting would fail" in dry.stdout
    assert re.search(rf"path: azureml://datastores/workspaceblobstore/paths/{TS}/aml_mlp\n", dry.stdout)


def test_azureml_incomplete_workspace_names_the_missing_keys(tmp_path: Path) -> None:
    done = _cli(
        tmp_path, "run", "--config", str(_config(tmp_path, client={"subscription_id": "s"})), "--dry-run"
    )
    assert done.returncode == 2
    assert "resource_group, workspace_name" in done.stderr and "cfg.json" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_azureml_unreachable_workspace_is_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    done = _cli(tmp_path, "run", "--config", str(_config(tmp_path)))
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "workspaceblobstore" in lines[0] and "Traceback" not in done.stderr


def test_azureml_worker_runs_as_the_job_command_exporting_to_azurite(
    azure_env: Azurite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from olivine import api
    from olivine.hosts.azureml import AzureMLHost

    prefix = fresh_prefix()
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("OLIVINE_HOME", str(home))
    # The workspace's blob datastore, given by the user's hosts file: Azurite here.
    (home / "hosts.yaml").write_text(
        yaml.safe_dump({"datastores": {"workspaceblobstore": {"url": f"az://{CONTAINER}/{prefix}"}}})
    )
    sent: list[Any] = []
    monkeypatch.setattr(AzureMLHost, "_create", lambda self, job: sent.append(job) or job)
    submission = api.submit(api.load(_config(tmp_path)))
    assert submission.job is not None and len(sent) == 1
    job = sent[0]
    assert job.outputs["export"].path.startswith("azureml://datastores/workspaceblobstore/paths/")
    # Run the job's command as Azure ML would: in a fresh working folder, ${{inputs.job}} = the input.
    command = job.command.replace("${{inputs.job}}", job.inputs["job"].path)
    workdir = tmp_path / "aml-wd"
    workdir.mkdir()
    env = {**os.environ, **job.environment_variables, "PYTHONPATH": os.pathsep.join(sys.path)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # `python` = this venv's
    done = subprocess.run(
        ["bash", "-c", command], cwd=workdir, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    ds = Datastore.from_url(f"az://{CONTAINER}/{prefix}")
    ts = job.outputs["export"].version
    assert job.outputs["export"].path.endswith(f"/paths/{ts}/aml_mlp")
    assert {"cache", "output", "manifest.json", "status.json"} <= set(ds.ls(f"{ts}/aml_mlp"))
    # Azure ML is unreachable: the datastore answers status and logs.
    status = api.status(submission.job.job_id)
    assert status.state.value == "SUCCEEDED", status.message
    assert any("finished" in line or "SUCCEEDED" in line for line in api.logs(submission.job.job_id))
