"""Plant secrets of every kind and grep every artifact for them, on every host and datastore that exists.

Secrets planted: AWS / Azure / Hugging Face environment variables (a user script prints and logs them),
a connection string and a SAS token inside an exception raised by user code (its traceback goes to the
log), and datastore URLs with user-info or a signed query string (refused before anything is written).
Artifacts grepped (as bytes): everything under ``OLIVINE_HOME`` (jobs.db, job.json, job logs, bundles,
the default datastore: exports, manifests, status.json, asset index, folder names), the output and
cache folders of foreground runs, and everything the commands printed, including ``--verbose``.
"""

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

SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMIK7MDENGbPxRfiCYplantedAWS",
    "AWS_SESSION_TOKEN": "FwoGZXIvYXdzEplantedSESSIONtoken",
    "AZURE_STORAGE_KEY": "plantedAZUREstorageKEYbase64==",
    "AZURE_STORAGE_CONNECTION_STRING": (
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=plantedCONNkey123==;"
    ),
    "AZURE_STORAGE_SAS_TOKEN": "sv=2024-01-01&sig=plantedSASsignature",
    "HF_TOKEN": "hf_plantedHUGGINGFACEtoken",
}
# The distinctive part of each (a connection string's key may be shown as "AccountKey=***").
NEEDLES = [
    b"wJalrXUtnFEMIK7MDENGbPxRfiCYplantedAWS",
    b"FwoGZXIvYXdzEplantedSESSIONtoken",
    b"plantedAZUREstorageKEYbase64",
    b"plantedCONNkey123",
    b"plantedSASsignature",
    b"hf_plantedHUGGINGFACEtoken",
    b"urlPASSWORDplanted",
]

USER_SCRIPT = """
import logging, os, subprocess

def leaky_metric(model, device, execution_providers):
    print("env says", os.environ["HF_TOKEN"], os.environ["AWS_SECRET_ACCESS_KEY"], flush=True)
    # Below Python: straight to the descriptors (as native libraries do), and from a subprocess.
    os.write(1, ("fd1 says " + os.environ["HF_TOKEN"] + "\\n").encode())
    os.write(2, ("fd2 says " + os.environ["AWS_SESSION_TOKEN"][:9]).encode())
    os.write(2, (os.environ["AWS_SESSION_TOKEN"][9:] + "\\n").encode())
    subprocess.run(["sh", "-c", 'echo "child says $AZURE_STORAGE_KEY"'], check=True)
    logging.getLogger("olivine.user").warning("key=%s", os.environ["AZURE_STORAGE_KEY"])
    print("sas", "https://acct.blob.core.windows.net/c?" + os.environ["AZURE_STORAGE_SAS_TOKEN"], flush=True)
    return 1.0

def failing_metric(model, device, execution_providers):
    raise RuntimeError("cannot connect with " + os.environ["AZURE_STORAGE_CONNECTION_STRING"]
                       + " session " + os.environ["AWS_SESSION_TOKEN"])
"""


def _config(folder: Path, workflow_id: str, func: str, **extra: Any) -> Path:
    (folder / "leaky.py").write_text(USER_SCRIPT)
    cfg = {
        "workflow_id": workflow_id,
        "input_model": write_onnx_mlp(folder / f"mlp-{workflow_id}"),
        "passes": {"quantize": {"type": "OnnxDynamicQuantization"}},
        "evaluators": {
            "ev": {
                "metrics": [
                    {
                        "name": "leak",
                        "type": "custom",
                        "sub_types": [{"name": "value", "priority": 1, "higher_is_better": True}],
                        "user_config": {"user_script": "leaky.py", "evaluate_func": func},
                    }
                ]
            }
        },
        "evaluator": "ev",
        "cache_dir": str(folder / f"cache-{workflow_id}"),
        "output_dir": str(folder / f"out-{workflow_id}"),
        **extra,
    }
    path = folder / f"{workflow_id}.json"
    path.write_text(json.dumps(cfg))
    return path


def _grep(root: Path) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        for needle in NEEDLES:
            if needle in str(path).encode():
                hits.append(f"{path}: in the name")
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            hits.extend(f"{path}: {needle.decode()}" for needle in NEEDLES if needle in data)
    return hits


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, **SECRETS, "OLIVINE_HOME": str(tmp_path / "home")}


def _olivine(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "olivine", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
    )


def _wait(env: dict[str, str], cwd: Path, job: str) -> dict[str, Any]:
    deadline = time.monotonic() + 300
    while True:
        doc: dict[str, Any] = json.loads(_olivine(env, cwd, "status", job, "--json").stdout)
        if doc["state"] in ("SUCCEEDED", "FAILED", "CANCELLED") or time.monotonic() > deadline:
            return doc
        time.sleep(0.5)


def test_planted_secrets_reach_no_artifact_of_the_local_worker(tmp_path: Path, env: dict[str, str]) -> None:
    printed: list[str] = []
    host = {"systems": {"w": {"type": "LocalWorker"}}, "workflow_host": "w"}
    jobs = {}
    for workflow_id, func in (("leaky", "leaky_metric"), ("failing", "failing_metric")):
        done = _olivine(
            env,
            tmp_path,
            "run",
            "--config",
            str(_config(tmp_path, workflow_id, func, **host)),
            "--json",
            "--verbose",
        )
        printed += [done.stdout, done.stderr]
        assert done.returncode == 0, done.stderr
        jobs[workflow_id] = json.loads(done.stdout)["job_id"]
    states = {wf: _wait(env, tmp_path, job)["state"] for wf, job in jobs.items()}
    assert states == {"leaky": "SUCCEEDED", "failing": "FAILED"}
    for job in jobs.values():
        for args in (
            ("status", job),
            ("status", job, "--json"),
            ("logs", job),
            ("list",),
            ("list", "--json"),
        ):
            done = _olivine(env, tmp_path, *args, "--verbose")
            printed += [done.stdout, done.stderr]
        done = _olivine(
            env, tmp_path, "fetch", job, "--all", "--to", str(tmp_path / "fetched" / job), "--verbose"
        )
        printed += [done.stdout, done.stderr]
    # The log did record what the script printed, only scrubbed.
    leaky_log = _olivine(env, tmp_path, "logs", jobs["leaky"]).stdout
    assert "env says" in leaky_log and "***" in leaky_log
    for said in ("fd1 says ***", "fd2 says ***", "child says ***"):
        assert said in leaky_log
    failing_log = _olivine(env, tmp_path, "logs", jobs["failing"]).stdout
    assert "Traceback" in failing_log and "cannot connect with" in failing_log
    assert _grep(tmp_path) == []
    text = "\n".join(printed).encode()
    assert [n for n in NEEDLES if n in text] == []


def test_planted_secrets_reach_no_artifact_of_a_foreground_run_with_verbose(
    tmp_path: Path, env: dict[str, str]
) -> None:
    printed: list[str] = []
    for workflow_id, func in (("leaky", "leaky_metric"), ("failing", "failing_metric")):
        done = _olivine(
            env, tmp_path, "run", "--config", str(_config(tmp_path, workflow_id, func)), "--verbose"
        )
        printed += [done.stdout, done.stderr]
        assert done.returncode == (0 if workflow_id == "leaky" else 1), done.stderr[-2000:]
    # LocalSystem as a host: runs in this process and still exports to a datastore (file:// and memory://).
    for url in ((tmp_path / "ds").as_uri(), "memory://planted"):
        cfg = _config(
            tmp_path,
            "hosted",
            "leaky_metric",
            systems={"here": {"type": "LocalSystem"}},
            workflow_host="here",
        )
        done = _olivine(env, tmp_path, "run", "--config", str(cfg), "--datastore", url, "--verbose")
        printed += [done.stdout, done.stderr]
        assert done.returncode == 0, done.stderr[-2000:]
    assert _grep(tmp_path) == []
    text = "\n".join(printed).encode()
    assert [n for n in NEEDLES if n in text] == []


@pytest.mark.parametrize(
    "url",
    ["file://me:urlPASSWORDplanted@{tmp}/ds", "{tmp}/ds?sig=urlPASSWORDplanted"],
)
def test_datastore_url_credentials_are_refused_before_anything_is_written(
    tmp_path: Path, env: dict[str, str], url: str
) -> None:
    cfg = _config(
        tmp_path, "leaky", "leaky_metric", systems={"w": {"type": "LocalWorker"}}, workflow_host="w"
    )
    done = _olivine(
        env,
        tmp_path,
        "run",
        "--config",
        str(cfg),
        "--datastore",
        url.format(tmp=tmp_path.as_uri()),
        "--verbose",
    )
    assert done.returncode == 2
    assert b"urlPASSWORDplanted" not in (done.stdout + done.stderr).encode()
    assert not (tmp_path / "home" / "jobs").exists() or not any((tmp_path / "home" / "jobs").iterdir())
    assert _grep(tmp_path) == []
