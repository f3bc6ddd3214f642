"""Planted secrets shared by the secret-planting tests (tests/integration/test_secret_planting.py for the
local hosts and datastores, tests/cloud/test_cloud_secret_planting.py for az:// and s3://).

Secrets of every kind sit in the environment; a user script prints them (Python ``print``, logging,
``os.write`` to descriptors 1 and 2, a subprocess) or raises them in an exception; the tests then grep
every artifact for :data:`NEEDLES`.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tiny_models import write_onnx_mlp

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


def write_config(folder: Path, workflow_id: str, func: str, **extra: Any) -> Path:
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


def grep_tree(root: Path, needles: list[bytes] = NEEDLES) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        for needle in needles:
            if needle in str(path).encode():
                hits.append(f"{path}: in the name")
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            hits.extend(f"{path}: {needle.decode()}" for needle in needles if needle in data)
    return hits


Olivine = Callable[..., "subprocess.CompletedProcess[str]"]


def run_leaky_and_failing(
    olivine: Olivine, env: dict[str, str], folder: Path, run_args: tuple[str, ...], **extra: Any
) -> tuple[dict[str, str], list[str]]:
    """Submit the leaky and the failing workflow (``olivine run ... *run_args --json``), wait until they
    end (leaky SUCCEEDED, failing FAILED) and return their job ids and everything the commands printed."""
    printed: list[str] = []
    jobs: dict[str, str] = {}
    for workflow_id, func in (("leaky", "leaky_metric"), ("failing", "failing_metric")):
        config = write_config(folder, workflow_id, func, **extra)
        done = olivine(env, folder, "run", "--config", str(config), *run_args, "--json")
        printed += [done.stdout, done.stderr]
        assert done.returncode == 0, done.stderr[-3000:]
        jobs[workflow_id] = json.loads(done.stdout)["job_id"]
    deadline = time.monotonic() + 300
    states: dict[str, Any] = {}
    while len(states) < 2 and time.monotonic() < deadline:
        for workflow_id, job in jobs.items():
            doc = json.loads(olivine(env, folder, "status", job, "--json").stdout)
            if doc["state"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
                states[workflow_id] = doc["state"]
        time.sleep(0.5)
    assert states == {"leaky": "SUCCEEDED", "failing": "FAILED"}
    return jobs, printed
