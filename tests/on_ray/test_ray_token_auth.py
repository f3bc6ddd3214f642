"""The Ray host on a real cluster with token authentication (``RAY_AUTH_MODE=token``): every path (the
one-time import check job, submit, status, logs --follow, list, cancel) carries the token from where
Ray's own clients take it; a missing or wrong token is one clear error that never shows the token; the
token reaches no file Olivine writes (tests/on_ray/test_ray_secret_planting.py plants it too)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.host_suite import write_workflow
from olivine.hosts import service
from olivine.jobs.records import JobStatus
from on_ray.test_ray_host import _ray_env
from ray_head import RayHead

pytestmark = pytest.mark.ray


def _files_with(root: Path, needle: str, *, skip: tuple[Path, ...] = ()) -> list[str]:
    return [
        str(p)
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink() and p not in skip and needle.encode() in p.read_bytes()
    ]


def test_ray_host_on_a_token_cluster_uses_the_token_on_every_path(
    ray_token_head: RayHead, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = ray_token_head.auth_token
    assert token is not None
    token_file = tmp_path / "ray-token"
    token_file.write_text(token + "\n")
    home = tmp_path / "home"
    monkeypatch.setenv("OLIVINE_HOME", str(home))
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token_file))
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    env = _ray_env(home, ray_token_head.address)  # runs the one-time import check job
    quick = env.submit(write_workflow(tmp_path / "quick")).job
    slow = env.submit(write_workflow(tmp_path / "slow", workflow_id="slow", sleep_s=120.0)).job
    assert quick is not None and slow is not None
    followed = list(service.logs(quick.job_id, follow=True, store=env.store))
    assert any(f"job {quick.job_id} SUCCEEDED" in line for line in followed)
    assert service.status(quick.job_id, store=env.store).state is JobStatus.SUCCEEDED
    env.wait_for(slow.job_id, lambda j: j.state is JobStatus.RUNNING)
    listed = {j.job_id: j.state for j in service.list_jobs(store=env.store)}
    assert listed == {quick.job_id: JobStatus.SUCCEEDED, slow.job_id: JobStatus.RUNNING}
    cancelled = service.cancel(slow.job_id, store=env.store)
    assert cancelled.state is JobStatus.CANCELLED
    # Ray agrees: the job was stopped through the API, not just marked in the store.
    info = ray_token_head.get(f"/api/jobs/{slow.job_id}")
    assert isinstance(info, dict) and info["status"] == "STOPPED"
    assert _files_with(tmp_path, token, skip=(token_file,)) == []


def _cli(home: Path, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH_")}
    return subprocess.run(
        [sys.executable, "-m", "olivine", *args],
        env={**base, "OLIVINE_HOME": str(home), "HOME": str(home), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_missing_or_wrong_token_is_one_clear_error_and_the_default_token_file_works(
    ray_token_head: RayHead, tmp_path: Path
) -> None:
    token = ray_token_head.auth_token
    assert token is not None
    home = tmp_path / "home"
    home.mkdir()
    (home / "hosts.yaml").write_text(
        f"hosts:\n  cluster: {{type: Ray, address: '{ray_token_head.address}', cancel_grace_s: 6}}\n"
    )
    config = str(write_workflow(tmp_path / "wf"))
    run = ("run", "--config", config, "--host", "cluster", "--json")
    cases = {
        "no mode": (
            {"RAY_AUTH_MODE": "disabled"},
            "requires token authentication and refused a request that "
            "carried no token; set RAY_AUTH_MODE=token",
        ),
        "no token": (
            {"RAY_AUTH_MODE": "token"},
            "RAY_AUTH_MODE=token but no Ray authentication token was found",
        ),
        "wrong token": (
            {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "wrong" + token[5:]},
            "refused the authentication token from RAY_AUTH_TOKEN",
        ),
    }
    for name, (env, message) in cases.items():
        done = _cli(home, tmp_path, *run, **env)
        errors = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode != 0 and len(errors) == 1 and message in errors[0], (name, done.stderr)
        assert token[5:] not in done.stdout + done.stderr
    assert json.loads(_cli(home, tmp_path, "list", "--json").stdout) == []  # nothing was persisted
    # The token in ~/.ray/auth_token (Ray's default place) and RAY_AUTH_MODE=token: it works.
    (home / ".ray").mkdir()
    (home / ".ray" / "auth_token").write_text(token)
    done = _cli(home, tmp_path, *run, RAY_AUTH_MODE="token")
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)["job_id"]
    done = _cli(home, tmp_path, "logs", job, "--follow", RAY_AUTH_MODE="token")
    assert done.returncode == 0 and f"job {job} SUCCEEDED" in done.stdout, done.stderr
    status = json.loads(_cli(home, tmp_path, "status", job, "--json", RAY_AUTH_MODE="token").stdout)
    assert status["state"] == "SUCCEEDED"
    # Without the token, status says what the cluster said: one clear error, not a guess.
    done = _cli(home, tmp_path, "status", job, RAY_AUTH_MODE="disabled")
    assert done.returncode != 0 and "requires token authentication" in done.stderr
    assert _files_with(tmp_path, token, skip=(home / ".ray" / "auth_token",)) == []
