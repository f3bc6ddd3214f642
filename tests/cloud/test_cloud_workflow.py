"""The tiny MLP workflow on the LocalWorker host, exporting to Azurite (``az://``) and to moto (``s3://``)
through the command line, as a user runs it: the export lands at ``<prefix>/<ts>/<workflow_id>/``; status,
logs (``--follow`` from submission to the end) and fetch re-attach from the datastore; a resubmission seeds its cache from it; and the planted
credentials appear in no artifact."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cloud_servers import AZURITE_KEY, CONTAINER, MOTO_ENV, Azurite, MotoS3, fresh_prefix
from olivine.datastores import Datastore
from tiny_models import write_onnx_mlp

TS = re.compile(r"^\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}$")


def _cli(home: Path, *args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "olivine", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **env, "OLIVINE_HOME": str(home)},
        timeout=600,
    )


def _config(tmp_path: Path) -> Path:
    cfg: dict[str, Any] = {
        "workflow_id": "cloud_mlp",
        "input_model": write_onnx_mlp(tmp_path / "mlp"),
        "systems": {"worker": {"type": "LocalWorker"}},
        "evaluators": {
            "e": {"metrics": [{"name": "size", "type": "size_on_disk", "sub_types": [{"name": "bytes"}]}]}
        },
        "passes": {"quantize": {"type": "OnnxDynamicQuantization"}},
        "engine": {"evaluator": "e"},
        "workflow_host": "worker",
    }
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    return path


def _run_workflow_to_cloud(tmp_path: Path, url: str, env: dict[str, str], secrets: list[str]) -> None:
    home = tmp_path / "home"
    config = _config(tmp_path)
    done = _cli(home, "run", "--config", str(config), "--datastore", url, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # Re-attach from the datastore alone (another machine could): follow the log to the job's end.
    followed = _cli(home, "logs", "--datastore", url, "cloud_mlp", "--follow", cwd=tmp_path, env=env)
    assert followed.returncode == 0, followed.stderr[-3000:]
    assert "workflow 'cloud_mlp' finished" in followed.stdout, followed.stdout[-3000:]
    logs = _cli(home, "logs", "--datastore", url, "cloud_mlp", cwd=tmp_path, env=env)
    assert logs.returncode == 0 and logs.stdout == followed.stdout
    ds = Datastore.from_url(url)
    (ts,) = [n for n in ds.ls("") if TS.match(n)]
    assert ds.ls(ts) == ["cloud_mlp"]
    assert {"cache", "output", "logs", "status.json", "manifest.json"} <= set(ds.ls(f"{ts}/cloud_mlp"))
    assert ds.walk_files(f"{ts}/cloud_mlp/output")
    assert ds.walk_files(f"{ts}/cloud_mlp/cache")

    status = _cli(home, "status", "--datastore", url, "cloud_mlp", "--json", cwd=tmp_path, env=env)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["state"] == "SUCCEEDED"
    fetched = _cli(
        home, "fetch", f"{url}/{ts}/cloud_mlp", "--to", str(tmp_path / "got"), cwd=tmp_path, env=env
    )
    assert fetched.returncode == 0, fetched.stderr
    assert (tmp_path / "got" / "output" / "model_config.json").is_file()

    again = _cli(home, "run", "--config", str(config), "--datastore", url, "--follow", cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "seeding cache from" in again.stdout + again.stderr
    assert "cache hit" in again.stdout + again.stderr

    # Planted credentials: in no exported file, no job folder file, no command output.
    texts = [done.stdout, done.stderr, followed.stdout, status.stdout, again.stdout, again.stderr]
    for rel, _ in ds.walk_files(""):
        texts.append(ds.read_bytes(rel).decode("utf-8", errors="replace"))
    for path in home.rglob("*"):
        if path.is_file() and path.stat().st_size < 5_000_000:
            texts.append(path.read_bytes().decode("utf-8", errors="replace"))
    leaks = [s for s in secrets if any(s in t for t in texts)]
    assert leaks == []


@pytest.mark.azure
def test_local_worker_exports_to_azurite_at_the_spec_layout(azure_env: Azurite, tmp_path: Path) -> None:
    env = {"AZURE_STORAGE_CONNECTION_STRING": azure_env.connection_string()}
    _run_workflow_to_cloud(tmp_path, f"az://{CONTAINER}/{fresh_prefix()}", env, [AZURITE_KEY])


@pytest.mark.s3
def test_local_worker_exports_to_s3_at_the_spec_layout(s3_env: MotoS3, tmp_path: Path) -> None:
    env = {**MOTO_ENV, "AWS_ENDPOINT_URL_S3": s3_env.endpoint}
    _run_workflow_to_cloud(
        tmp_path, f"s3://{CONTAINER}/{fresh_prefix()}", env, [MOTO_ENV["AWS_SECRET_ACCESS_KEY"]]
    )
