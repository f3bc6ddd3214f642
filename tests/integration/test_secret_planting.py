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

from secret_plants import NEEDLES, SECRETS
from secret_plants import grep_tree as _grep
from secret_plants import write_config as _config

pytestmark = pytest.mark.integration


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
