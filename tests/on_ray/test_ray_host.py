"""The Ray host on a real Ray head: the host conformance suite, plus what only a cluster host promises
(the job outlives its submitter, status and logs from the datastore when the head is gone, bundles that
travel through the datastore, a clear error when the cluster has no Olivine)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.host_suite import HostEnv, HostSuite, export_of, write_workflow
from olivine.datastores.manifest import read_manifest
from olivine.errors import HostError
from olivine.hosts import service
from olivine.jobs.exports import open_job_export
from olivine.jobs.records import JobRecord, JobStatus
from olivine.jobs.remote import read_export_status
from ray_head import RayHead

pytestmark = pytest.mark.ray

# Long enough for a graceful stop (the running step ends, the export is sealed), short enough for the
# suite's forced-cancel test.
_GRACE_S = 6


def _kill_worker(job: JobRecord) -> None:
    """Kill the worker process on the (local) cluster, as a crash would: its pid is in its status."""
    status = read_export_status(open_job_export(job))
    assert status is not None and status.worker.get("pid"), "the worker has not reported yet"
    os.kill(int(status.worker["pid"]), signal.SIGKILL)


def _ray_env(home: Path, address: str, **extra: object) -> HostEnv:
    home.mkdir(parents=True, exist_ok=True)
    options = ", ".join(f"{k}: {json.dumps(v)}" for k, v in {"cancel_grace_s": _GRACE_S, **extra}.items())
    (home / "hosts.yaml").write_text(f"hosts:\n  cluster: {{type: Ray, address: '{address}', {options}}}\n")
    # The first submission to a cluster checks that Olivine is importable there (a small Ray job);
    # the suite times submissions, so the check is done once here.
    env = HostEnv(
        home=home, host_name="cluster", kill_worker=_kill_worker, submit_budget_s=3.0, job_timeout_s=180.0
    )
    from olivine.hosts.base import host_for

    host_for("cluster", env.profiles.host("cluster"), env.store).check()
    return env


@pytest.fixture
def host_env(ray_head: RayHead, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HostEnv]:
    home = tmp_path / "home"
    monkeypatch.setenv("OLIVINE_HOME", str(home))
    env = _ray_env(home, ray_head.address)
    yield env
    for job in env.store.list():
        if not service.status(job.job_id, store=env.store).state.is_terminal():
            service.cancel(job.job_id, store=env.store)


class TestRayConformance(HostSuite):
    pass


def test_ray_job_from_workflow_host_finishes_after_the_submitter_is_killed(
    host_env: HostEnv, tmp_path: Path, ray_head: RayHead
) -> None:
    config = write_workflow(
        tmp_path / "wf", sleep_s=3.0, passes={"quant": {"type": "OnnxDynamicQuantization"}}
    )
    data = json.loads(config.read_text())
    address = ray_head.address
    data.update(systems={"ray": {"type": "Ray", "address": address}}, workflow_host="ray")
    config.write_text(json.dumps(data))
    cli = subprocess.Popen(
        [sys.executable, "-m", "olivine", "run", "--config", str(config), "--follow"],
        env={**os.environ, "OLIVINE_HOME": str(host_env.home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (jobs := service.list_jobs(store=host_env.store)) or jobs[0].state is not JobStatus.RUNNING:
            assert cli.poll() is None and time.monotonic() < deadline, "the job never started"
            time.sleep(0.2)
        os.killpg(cli.pid, signal.SIGKILL)  # the submitter and its session, as a closed terminal would
        cli.wait(10)
    finally:
        if cli.poll() is None:
            os.killpg(cli.pid, signal.SIGKILL)
            cli.wait()
    done = host_env.wait(jobs[0].job_id)
    assert done.state is JobStatus.SUCCEEDED, done.message
    assert done.host_type == "Ray" and done.host_info["address"] == address
    layout = export_of(done)
    manifest = read_manifest(layout.datastore, layout)
    assert manifest is not None and manifest["status"]["state"] == "SUCCEEDED"
    paths = {f["path"] for f in manifest["files"]}
    assert {"output/model/model.onnx", "output/model_config.json"} <= paths
    assert any(p.startswith("cache/runs/") for p in paths) and any(
        p.startswith("logs/worker/") for p in paths
    )


def test_ray_status_and_logs_answer_from_the_datastore_when_the_head_is_gone(
    host_env: HostEnv, tmp_path: Path, ray_head: RayHead
) -> None:
    job = host_env.submit(write_workflow(tmp_path / "wf")).job
    assert job is not None
    # Watched by reading only: the job store still says what it said at submission.
    seen = host_env.wait_for(job.job_id, lambda j: j.state.is_terminal(), timeout_s=180)
    assert seen.state is JobStatus.SUCCEEDED, seen.message
    assert not host_env.store.get(job.job_id).state.is_terminal()
    ray_logs = "\n".join(service.logs(job.job_id, store=host_env.store))
    assert f"job {job.job_id} SUCCEEDED" in ray_logs
    head = ray_head
    head.stop()
    try:
        # The head is gone: status, list and logs come from the datastore (list: from the store).
        gone = service.status(job.job_id, store=host_env.store)
        assert gone.state is JobStatus.SUCCEEDED and gone.progress == seen.progress
        assert f"job {job.job_id} SUCCEEDED" in "\n".join(service.logs(job.job_id, store=host_env.store))
        assert [j.job_id for j in service.list_jobs(store=host_env.store)] == [job.job_id]
    finally:
        head.restart()
    # A restarted head has no job history: still answered from the datastore, and the monitor records it.
    assert service.status(job.job_id, store=host_env.store).state is JobStatus.SUCCEEDED
    assert f"job {job.job_id} SUCCEEDED" in "\n".join(service.logs(job.job_id, store=host_env.store))
    [monitored] = service.monitor(job.job_id, store=host_env.store)
    assert monitored.state is JobStatus.SUCCEEDED and host_env.store.get(job.job_id) == monitored


_LINGERING_METRIC = """import atexit
import time

atexit.register(time.sleep, 15.0)  # the worker's process outlives its final status by 15 s


def evaluate(model, device, execution_providers, sleep_s=0.0):
    return 1.0
"""


def test_ray_list_and_status_agree_while_ray_still_runs_a_finished_worker(
    host_env: HostEnv, tmp_path: Path, ray_head: RayHead
) -> None:
    """The worker wrote its final status but its process has not exited (user code at exit, or Ray not
    yet seeing the exit): Ray says RUNNING, the worker says SUCCEEDED, and ``list`` says what ``status``
    says (a CI run caught ``list`` saying RUNNING beside ``status`` saying SUCCEEDED)."""
    config = write_workflow(tmp_path / "wf", sleep_s=0.0)
    (tmp_path / "wf" / "metric.py").write_text(_LINGERING_METRIC)
    job = host_env.submit(config).job
    assert job is not None
    done = host_env.wait_for(job.job_id, lambda j: j.state.is_terminal(), timeout_s=180)
    assert done.state is JobStatus.SUCCEEDED, done.message
    listed = {j.job_id: j.state for j in service.list_jobs(store=host_env.store)}
    info = ray_head.get(f"/api/jobs/{job.job_id}")
    assert isinstance(info, dict) and info["status"] == "RUNNING"  # so it was RUNNING at the listing too
    assert listed == {job.job_id: JobStatus.SUCCEEDED}
    assert [j.job_id for j in service.list_jobs(states=(JobStatus.RUNNING,), store=host_env.store)] == []


def test_ray_running_job_survives_in_the_store_when_the_head_restarts(
    host_env: HostEnv, tmp_path: Path, ray_head: RayHead
) -> None:
    # A job killed with its (single-node) head: status says so once its heartbeat is overdue.
    job = host_env.submit(write_workflow(tmp_path / "wf", sleep_s=60.0)).job
    assert job is not None
    host_env.wait_for(job.job_id, lambda j: j.state is JobStatus.RUNNING)
    ray_head.restart()
    observed = service.status(job.job_id, store=host_env.store)
    # Its status is RUNNING on the datastore and not stale yet: unknown to Ray, it is not judged dead.
    assert observed.state is JobStatus.RUNNING
    cancelled = service.cancel(job.job_id, store=host_env.store)
    assert cancelled.state is JobStatus.CANCELLED
    layout = export_of(cancelled)
    manifest = read_manifest(layout.datastore, layout)
    assert manifest is not None and manifest["status"]["state"] == "CANCELLED"


def test_ray_large_bundle_travels_through_the_datastore_once(
    ray_head: RayHead, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("OLIVINE_HOME", str(home))
    env = _ray_env(home, ray_head.address, working_dir_max_bytes=0)
    config = write_workflow(tmp_path / "wf")
    first = env.submit(config).job
    second = env.submit(config, fresh=True).job
    assert first is not None and second is not None
    for job in (first, second):
        done = env.wait(job.job_id)
        assert done.state is JobStatus.SUCCEEDED, done.message
        assert done.host_info["bundle_via"] == "datastore"
    bundles = list((home / "datastore" / "bundles").iterdir())
    assert len(bundles) == 1 and bundles[0].name.endswith(".tar")  # the same content, uploaded once


def test_ray_submit_without_olivine_on_the_cluster_is_one_clear_error(
    ray_head: RayHead, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("OLIVINE_HOME", str(home))
    address = ray_head.address
    # The system interpreter, with no path to this checkout: it has no Olivine.
    (home / "hosts.yaml").write_text(
        f"hosts:\n  bare: {{type: Ray, address: '{address}', python: /usr/bin/python3,"
        " runtime_env: {env_vars: {PYTHONPATH: ''}}}\n"
    )
    env = HostEnv(home=home, host_name="bare", kill_worker=_kill_worker)
    with pytest.raises(
        HostError,
        match=r"Olivine is not importable on the Ray cluster at .*/usr/bin/python3.*runtime_env pip",
    ):
        env.submit(write_workflow(tmp_path / "wf"))
    assert env.store.list() == []  # nothing was written for a submission that cannot run


def test_ray_submit_goes_over_http_without_importing_ray(host_env: HostEnv, tmp_path: Path) -> None:
    config = write_workflow(tmp_path / "wf")
    code = (
        "import json, sys; from olivine import api;"
        " s = api.submit(api.load(sys.argv[1]), host='cluster');"
        " print(json.dumps({'job': s.job.job_id, 'ray': 'ray' in sys.modules}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(config)],
        env={**os.environ, "OLIVINE_HOME": str(host_env.home)},
        capture_output=True,
        text=True,
        check=True,
    )
    submitted = json.loads(done.stdout.strip().splitlines()[-1])
    assert submitted["ray"] is False  # the Jobs REST API through urllib, not Ray's SDK
    finished = host_env.wait(submitted["job"])
    assert finished.state is JobStatus.SUCCEEDED, finished.message
    assert finished.host_info["bundle_via"] == "working_dir"


_NO_RAY_CLI = (
    "import sys; from olivine.cli.main import main; code = main(sys.argv[1:]);"
    " print('RAY:', sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.'))[:3]); sys.exit(code)"
)


def test_no_cli_command_imports_ray(host_env: HostEnv, tmp_path: Path) -> None:
    """Every command speaks the Jobs REST API (the SDK costs about a second of CPU to import)."""

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", _NO_RAY_CLI, *args],
            env={**os.environ, "OLIVINE_HOME": str(host_env.home)},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, (args, done.stderr[-2000:])
        *out, last = done.stdout.rstrip("\n").split("\n")
        assert last == "RAY: []", (args, last)
        return "\n".join(out)

    run = ("run", "--host", "cluster", "--json", "--config")
    quick = json.loads(cli(*run, str(write_workflow(tmp_path / "quick"))))["job_id"]
    slow = json.loads(cli(*run, str(write_workflow(tmp_path / "slow", workflow_id="slow", sleep_s=120.0))))
    assert f"job {quick} SUCCEEDED" in cli("logs", quick, "--follow")
    assert json.loads(cli("status", quick, "--json"))["state"] == "SUCCEEDED"
    host_env.wait_for(slow["job_id"], lambda j: j.state is JobStatus.RUNNING)
    listed = {j["job_id"]: j["state"] for j in json.loads(cli("list", "--json"))}
    assert listed == {quick: "SUCCEEDED", slow["job_id"]: "RUNNING"}
    assert f"job {quick} SUCCEEDED" in cli("logs", quick)
    cli("fetch", quick, "--to", str(tmp_path / "fetched"))
    assert (tmp_path / "fetched").is_dir()
    cli("cancel", slow["job_id"])
    assert service.status(slow["job_id"], store=host_env.store).state is JobStatus.CANCELLED
