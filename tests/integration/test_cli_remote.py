"""The remote workflow through the command line, as a user types it (LocalWorker host, tiny model)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tiny_models import write_onnx_mlp

pytestmark = pytest.mark.integration


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "home"
    home.mkdir()
    yield home
    # Stop only the workers of jobs these tests submitted (their pids are in this home's job store).
    done = _cli(home, "list", "--json", cwd=tmp_path)
    for job in json.loads(done.stdout or "[]"):
        if job["state"] in ("PENDING", "RUNNING") and job.get("pid"):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(job["pid"], signal.SIGKILL)


def _cli(home: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OLIVINE_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "olivine", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def _config(tmp_path: Path, **extra: Any) -> Path:
    cfg: dict[str, Any] = {
        "workflow_id": "cli_mlp",
        "input_model": write_onnx_mlp(tmp_path / "mlp"),
        "systems": {"worker": {"type": "LocalWorker"}, "here": {"type": "LocalSystem"}},
        "evaluators": {
            "e": {"metrics": [{"name": "size", "type": "size_on_disk", "sub_types": [{"name": "bytes"}]}]}
        },
        "passes": {"quantize": {"type": "OnnxDynamicQuantization"}},
        "engine": {"evaluator": "e"},
        "workflow_host": "worker",
    }
    cfg.update(extra)
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    return path


def test_cli_run_submits_and_returns_json_with_paths_then_status_logs_fetch(
    tmp_path: Path, home: Path
) -> None:
    config = _config(tmp_path)
    start = time.perf_counter()
    submitted = _cli(home, "run", "--config", str(config), "--json", cwd=tmp_path)
    elapsed = time.perf_counter() - start
    assert submitted.returncode == 0, submitted.stderr
    doc = json.loads(submitted.stdout)
    assert doc["workflow_id"] == "cli_mlp" and doc["job_id"].startswith("job-")
    assert doc["state"] in ("PENDING", "RUNNING")
    assert doc["cache"].endswith("/cli_mlp/cache") and doc["output"].endswith("/cli_mlp/output")
    assert elapsed < 30  # returned without waiting for the workflow (which imports onnxruntime etc.)

    job = doc["job_id"]
    logs = _cli(home, "logs", job, "--follow", cwd=tmp_path)
    assert logs.returncode == 0 and "OnnxDynamicQuantization 'quantize'" in logs.stdout

    status = json.loads(_cli(home, "status", job, "--json", cwd=tmp_path).stdout)
    assert status["state"] == "SUCCEEDED" and "size-bytes" in status["best_metrics"]
    listed = json.loads(_cli(home, "list", "--json", cwd=tmp_path).stdout)
    assert [j["job_id"] for j in listed] == [job]

    export_root = Path(doc["export"].removeprefix("file://"))
    timestamp_folder = export_root.parent.name
    assert len(timestamp_folder.split("-")) == 6 and export_root.name == "cli_mlp"
    assert {p.name for p in export_root.iterdir()} >= {
        "cache",
        "output",
        "logs",
        "manifest.json",
        "status.json",
    }

    fetched = _cli(home, "fetch", job, "--to", str(tmp_path / "got"), cwd=tmp_path)
    assert fetched.returncode == 0, fetched.stderr
    assert "sha256 verified" in fetched.stdout
    assert (tmp_path / "got" / "output" / "model_config.json").is_file()

    remote = _cli(
        tmp_path / "other-home",
        "status",
        "--datastore",
        str(export_root.parent.parent),
        "cli_mlp",
        "--json",
        cwd=tmp_path,
    )
    assert remote.returncode == 0, remote.stderr
    assert json.loads(remote.stdout)["state"] == "SUCCEEDED"


def test_cli_dry_run_shows_bundle_and_submits_nothing(tmp_path: Path, home: Path) -> None:
    result = _cli(home, "run", "--config", str(_config(tmp_path)), "--dry-run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "input_model.model_path" in result.stdout and "export to" in result.stdout
    assert json.loads(_cli(home, "list", "--json", cwd=tmp_path).stdout) == []


def test_cli_bad_config_is_refused_before_submitting(tmp_path: Path, home: Path) -> None:
    config = _config(tmp_path, passes={"quantize": {"type": "OnnxDynamicQuantization", "per_chanel": True}})
    result = _cli(home, "run", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2 and "per_chanel" in result.stderr
    assert json.loads(_cli(home, "list", "--json", cwd=tmp_path).stdout) == []
    assert not (home / "datastore").exists() or not any((home / "datastore").iterdir())


def test_cli_unknown_host_is_a_clear_error(tmp_path: Path, home: Path) -> None:
    result = _cli(home, "run", "--config", str(_config(tmp_path)), "--host", "nowhere", cwd=tmp_path)
    assert result.returncode == 2
    assert "nowhere" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_cli_local_system_host_runs_in_foreground_and_says_so(tmp_path: Path, home: Path) -> None:
    result = _cli(home, "run", "--config", str(_config(tmp_path)), "--host", "here", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "foreground" in result.stderr
    assert "SUCCEEDED" in result.stdout
