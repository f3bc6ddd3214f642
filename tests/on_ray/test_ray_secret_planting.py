"""Planted secrets (tests/secret_plants.py) on the Ray host: the secrets reach the job's environment
through the Ray system's ``runtime_env.env_vars`` (in the user's hosts file, where credentials belong);
the leaky and the failing workflow run on a real head, exporting to a local datastore; every file under
the test folder (job store, job folders, datastore, fetched output), the job's log as Ray and Olivine
serve it, and everything the commands printed (``--verbose``) are grepped. The cluster requires token
authentication and the commands hold its token (``RAY_AUTH_TOKEN``): the token is planted too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ray_head import RayHead
from secret_plants import NEEDLES, SECRETS, grep_tree, run_leaky_and_failing

pytestmark = pytest.mark.ray


def _olivine(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "olivine", *args, "--verbose"],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
    )


def test_planted_secrets_reach_no_artifact_of_a_ray_job(ray_token_head: RayHead, tmp_path: Path) -> None:
    token = ray_token_head.auth_token
    assert token is not None
    home = tmp_path / "home"
    home.mkdir()
    hosts = {
        "hosts": {
            "cluster": {
                "type": "Ray",
                "address": ray_token_head.address,
                "runtime_env": {"env_vars": SECRETS},
            }
        }
    }
    (home / "hosts.yaml").write_text(json.dumps(hosts))  # JSON is YAML
    env = {**os.environ, "OLIVINE_HOME": str(home), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    url = (tmp_path / "ds").as_uri()
    jobs, printed = run_leaky_and_failing(_olivine, env, tmp_path, ("--host", "cluster", "--datastore", url))
    for workflow_id, job in jobs.items():
        for args in (
            ("status", job, "--json"),
            ("logs", job),
            ("status", "--datastore", url, workflow_id),
            ("list", "--json"),
        ):
            done = _olivine(env, tmp_path, *args)
            printed += [done.stdout, done.stderr]
    done = _olivine(env, tmp_path, "fetch", jobs["leaky"], "--to", str(tmp_path / "fetched"))
    printed += [done.stdout, done.stderr]
    # The job did print its secrets (so the test can fail): the log holds the lines, scrubbed.
    leaky_log = _olivine(env, tmp_path, "logs", jobs["leaky"]).stdout
    assert "env says" in leaky_log and "fd1 says ***" in leaky_log and "child says ***" in leaky_log
    failing_log = _olivine(env, tmp_path, "logs", jobs["failing"]).stdout
    assert "cannot connect with" in failing_log
    needles = [*NEEDLES, token.encode()]
    hits = [h for h in grep_tree(tmp_path, needles) if "hosts.yaml" not in h]  # the user's credentials file
    assert hits == []
    text = "\n".join(printed).encode()
    assert [n for n in needles if n in text] == []
