"""User code that ends the process is the user's doing: sys.exit / os._exit / a raised KeyboardInterrupt
fail the workflow with error kind ``user`` and say what happened, in the foreground and in a worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tiny_models import write_onnx_mlp

pytestmark = pytest.mark.integration

SCRIPT = """
import os, sys

def exit_zero(model, device, execution_providers):
    sys.exit(0)

def exit_three(model, device, execution_providers):
    sys.exit(3)

def hard_exit(model, device, execution_providers):
    os._exit(0)

def interrupt(model, device, execution_providers):
    raise KeyboardInterrupt
"""


def _config(folder: Path, func: str, *, worker: bool) -> Path:
    (folder / "script.py").write_text(SCRIPT)
    cfg: dict[str, Any] = {
        "workflow_id": f"exits_{func}",
        "input_model": write_onnx_mlp(folder / "mlp"),
        "evaluators": {
            "ev": {
                "metrics": [
                    {
                        "name": "m",
                        "type": "custom",
                        "sub_types": [{"name": "v", "priority": 1, "higher_is_better": True}],
                        "user_config": {"user_script": "script.py", "evaluate_func": func},
                    }
                ]
            }
        },
        "evaluator": "ev",
        "cache_dir": str(folder / "cache"),
        "output_dir": str(folder / f"out-{func}"),
    }
    if worker:
        cfg.update(systems={"w": {"type": "LocalWorker"}}, workflow_host="w")
    path = folder / f"{func}.json"
    path.write_text(json.dumps(cfg))
    return path


def _olivine(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OLIVINE_HOME": str(tmp_path / "home")}
    return subprocess.run(
        [sys.executable, "-m", "olivine", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("func", "says"),
    [
        ("exit_zero", "sys.exit(0)"),
        ("exit_three", "sys.exit(3)"),
        ("interrupt", "KeyboardInterrupt"),
    ],
)
def test_foreground_run_fails_with_exit_1_naming_the_user_code_exit(
    tmp_path: Path, func: str, says: str
) -> None:
    done = _olivine(tmp_path, "run", "--config", str(_config(tmp_path, func, worker=False)))
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("olivine: error: user code") and says in last
    assert not (tmp_path / f"out-{func}" / "model").exists()


@pytest.mark.parametrize(
    ("func", "says"),
    [
        ("exit_zero", "sys.exit(0)"),
        ("hard_exit", "os._exit(0)"),
        ("interrupt", "KeyboardInterrupt"),
    ],
)
def test_worker_job_fails_with_kind_user_naming_the_user_code_exit(
    tmp_path: Path, func: str, says: str
) -> None:
    done = _olivine(tmp_path, "run", "--config", str(_config(tmp_path, func, worker=True)), "--json")
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)["job_id"]
    deadline = time.monotonic() + 240
    while True:
        status = json.loads(_olivine(tmp_path, "status", job, "--json").stdout)
        if status["state"] in ("SUCCEEDED", "FAILED", "CANCELLED") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert status["state"] == "FAILED", status
    assert status["error_kind"] == "user", status
    assert says in status["message"], status
