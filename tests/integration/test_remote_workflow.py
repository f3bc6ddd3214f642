"""Acceptance tests of the remote workflow on the LocalWorker host, through :mod:`olivine.hosts.service`.

The submitting process dies and the job goes on; the export layout and its manifest; a worker killed
mid-run, then resumed without re-running the finished pass; cancel; fetch refusing a tampered file;
re-attaching from a machine that never saw the submission; resubmission seeding from the last export.

Every test runs with OLIVINE_HOME in a temporary folder and kills, at the end, only the processes it
started (the worker processes of its own jobs and its own submitting subprocess).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.host_suite import HostEnv, export_of, write_workflow
from olivine.datastores.layout import ExportLayout, list_exports
from olivine.datastores.manifest import read_manifest, verify
from olivine.errors import IntegrityError
from olivine.hosts import service
from olivine.hosts.process import job_process_alive, worker_pid
from olivine.jobs.records import ErrorKind, JobRecord, JobStatus
from tiny_models import write_onnx_mlp

pytestmark = pytest.mark.integration

_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}$")


def _kill(job: JobRecord) -> None:
    pid = worker_pid(job)
    assert pid is not None and job_process_alive(job)
    os.killpg(pid, signal.SIGKILL)  # the worker leads its own session


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HostEnv]:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("OLIVINE_HOME", str(home))
    (home / "hosts.yaml").write_text("hosts:\n  worker: {type: LocalWorker, cancel_grace_s: 30}\n")
    env = HostEnv(home=home, host_name="worker", kill_worker=_kill)
    yield env
    for job in env.store.list():
        if job_process_alive(job):
            _kill(job)


def _two_pass_workflow(folder: Path, *, repeats: int = 300, workflow_id: str = "slow") -> Path:
    """An ONNX MLP quantized in two passes (one MatMul each), each candidate timed by a latency metric
    that sleeps 10 ms per run: ``repeats`` runs make each evaluation last ``repeats / 100`` seconds."""
    model = write_onnx_mlp(folder / "model")
    timing = {"warmup_num": 0, "repeat_test_num": repeats, "sleep_num": 0.01}
    config: dict[str, Any] = {
        "workflow_id": workflow_id,
        "input_model": {**model, "model_path": "model"},
        "data_configs": [
            {
                "name": "dummy",
                "type": "DummyDataContainer",
                "load_dataset_config": {"input_names": ["input"], "input_shapes": [[1, 32]]},
            }
        ],
        "evaluators": {
            "lat": {
                "metrics": [
                    {
                        "name": "latency",
                        "type": "latency",
                        "data_config": "dummy",
                        "sub_types": [{"name": "avg", "priority": 1, "metric_config": timing}],
                    }
                ]
            }
        },
        # Every candidate is evaluated: the slow evaluation after quant1 is the window the tests act in.
        "engine": {"evaluator": "lat", "evaluate_input_model": False, "evaluate_intermediate_models": True},
        "passes": {
            "quant1": {"type": "OnnxDynamicQuantization", "nodes_to_quantize": ["fc1_matmul"]},
            "quant2": {"type": "OnnxDynamicQuantization", "nodes_to_quantize": ["fc2_matmul"]},
        },
    }
    path = folder / "workflow.json"
    path.write_text(json.dumps(config, indent=2))
    return path


def _runs(layout: ExportLayout) -> dict[str, tuple[str, str]]:
    """Pass name -> (run key, sha256 of run.json) of every pass run in an export's manifest."""
    manifest = read_manifest(layout.datastore, layout)
    assert manifest is not None
    runs = {}
    for entry in manifest["files"]:
        match = re.fullmatch(r"cache/runs/([0-9a-f]{64})/run\.json", entry["path"])
        if match:
            record = json.loads(layout.datastore.read_bytes(layout.path(entry["path"])))
            runs[record["pass_name"]] = (match.group(1), entry["sha256"])
    return runs


def test_remote_job_finishes_after_the_submitting_cli_process_is_killed(env: HostEnv, tmp_path: Path) -> None:
    config = write_workflow(tmp_path / "wf", sleep_s=3.0)
    data = json.loads(config.read_text())
    data.update(systems={"box": {"type": "LocalWorker"}}, workflow_host="box")
    config.write_text(json.dumps(data))
    cli = subprocess.Popen(
        [sys.executable, "-m", "olivine", "run", "--config", str(config), "--follow"],
        env={**os.environ, "OLIVINE_HOME": str(env.home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (jobs := service.list_jobs(store=env.store)) or jobs[0].state is JobStatus.PENDING:
            assert cli.poll() is None and time.monotonic() < deadline, "the job never started"
            time.sleep(0.1)
        running = service.status(jobs[0].job_id, store=env.store)
        assert running.state is JobStatus.RUNNING and running.host_info["submitter"]["pid"] == cli.pid
        os.killpg(cli.pid, signal.SIGKILL)  # the CLI and anything in its session, as a closed terminal would
        assert cli.wait(10) == -signal.SIGKILL
    finally:
        if cli.poll() is None:
            os.killpg(cli.pid, signal.SIGKILL)
            cli.wait()
    done = env.wait(running.job_id)
    assert done.state is JobStatus.SUCCEEDED, done.message


def test_remote_export_layout_is_timestamp_then_workflow_id_with_a_verified_manifest(
    env: HostEnv, tmp_path: Path
) -> None:
    quant = {"quant": {"type": "OnnxDynamicQuantization"}}
    job = env.submit(write_workflow(tmp_path / "wf", workflow_id="layout", passes=quant)).job
    assert job is not None and env.wait(job.job_id).state is JobStatus.SUCCEEDED
    datastore = env.home / "datastore"
    assert sorted(p.name for p in datastore.iterdir()) == sorted([*_folders(datastore), "assets"])
    [stamp] = _folders(datastore)
    assert [p.name for p in (datastore / stamp).iterdir()] == ["layout"]
    root = datastore / stamp / "layout"
    assert sorted(p.name for p in root.iterdir()) == [
        ".olivine",  # bookkeeping: the folder claim and the export index
        "cache",
        "logs",
        "manifest.json",
        "output",
        "status.json",
    ]
    manifest = json.loads((root / "manifest.json").read_text())
    listed = {f["path"]: f for f in manifest["files"]}
    on_disk = {
        p.relative_to(root).as_posix()
        for part in ("cache", "output", "logs")
        for p in (root / part).rglob("*")
        if p.is_file()
    }
    assert set(listed) == on_disk
    for rel, entry in listed.items():
        data = (root / rel).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (entry["size"], entry["sha256"]), rel
    assert {"output/model/model.onnx", "output/model_config.json"} <= set(listed)
    assert any(p.startswith("cache/runs/") for p in listed) and any(p.startswith("logs/") for p in listed)
    asset = json.loads((datastore / "assets" / "layout" / f"{stamp}.json").read_text())
    assert asset["summary"]["status"]["state"] == "SUCCEEDED"


def _evaluating(job: JobRecord) -> bool:
    """The first candidate's pass ran (and was exported); its evaluation is under way."""
    return "candidate 1/2: evaluating" in (job.current_pass or "")


def _folders(datastore: Path) -> list[str]:
    return [p.name for p in datastore.iterdir() if _TIMESTAMP.match(p.name)]


def test_remote_killed_worker_fails_keeps_its_pass_and_resume_skips_it(env: HostEnv, tmp_path: Path) -> None:
    job = env.submit(_two_pass_workflow(tmp_path / "wf")).job
    assert job is not None
    # The phase says "evaluating" after the pass's run was exported; its evaluation then takes ~3 s.
    after_pass = env.wait_for(job.job_id, _evaluating)
    assert after_pass.state is JobStatus.RUNNING, after_pass.message
    _kill(after_pass)
    failed = env.wait_for(job.job_id, lambda j: j.state.is_terminal(), timeout_s=15)
    assert failed.state is JobStatus.FAILED and failed.error_kind is ErrorKind.INFRASTRUCTURE
    assert failed.message == f"worker process died (pid {worker_pid(after_pass)})"
    # Observing wrote nothing; the monitor records the verdict and seals the export: readers of the
    # datastore see the failure, the pass is in it.
    assert not env.store.get(job.job_id).state.is_terminal()
    [monitored] = service.monitor(job.job_id, store=env.store)
    assert monitored == failed.evolve(ended_at=monitored.ended_at)
    first = export_of(failed)
    remote = service.remote_status(str(env.home / "datastore"), "slow")
    assert remote["state"] == "FAILED" and remote["sealed"] and remote["message"] == failed.message
    assert set(_runs(first)) == {"quant1"}

    resumed = service.resume(job.job_id, store=env.store, profiles=env.profiles).job
    assert resumed is not None and resumed.resume_from == failed.export_root
    done = env.wait(resumed.job_id)
    assert done.state is JobStatus.SUCCEEDED, done.message
    log = "\n".join(service.logs(resumed.job_id, store=env.store))
    assert re.search(r"\[1/1\] OnnxDynamicQuantization 'quant1': cache hit", log)
    assert "[1/1] OnnxDynamicQuantization 'quant1': running" not in log
    assert "[2/2] OnnxDynamicQuantization 'quant2': running" in log
    second = _runs(export_of(done))
    # The same run record, byte for byte: seeded from the first export, not produced again.
    assert second["quant1"] == _runs(first)["quant1"] and set(second) == {"quant1", "quant2"}


def test_remote_cancel_is_cancelled_with_the_finished_work_exported(env: HostEnv, tmp_path: Path) -> None:
    job = env.submit(_two_pass_workflow(tmp_path / "wf")).job
    assert job is not None
    after_pass = env.wait_for(job.job_id, _evaluating)
    assert after_pass.state is JobStatus.RUNNING, after_pass.message
    time.sleep(0.5)  # well inside the ~3 s evaluation of quant1's output, which then finishes first
    cancelled = service.cancel(job.job_id, timeout_s=30, store=env.store)
    assert cancelled.state is JobStatus.CANCELLED and cancelled.message == "cancelled"
    layout = export_of(cancelled)
    manifest = read_manifest(layout.datastore, layout)
    assert manifest is not None and manifest["status"]["state"] == "CANCELLED"
    assert set(_runs(layout)) == {"quant1"}
    # The evaluation running when the stop came finished and was exported too.
    assert sum(f["path"].startswith("cache/evaluations/") for f in manifest["files"]) == 1
    assert verify(layout.datastore, layout) == []
    assert service.assets_show("slow")["state"] == "CANCELLED"


def test_remote_fetch_verifies_hashes_and_refuses_a_tampered_file(env: HostEnv, tmp_path: Path) -> None:
    job = env.submit(write_workflow(tmp_path / "wf")).job
    assert job is not None and env.wait(job.job_id).state is JobStatus.SUCCEEDED
    files = service.fetch(job.job_id, tmp_path / "good", store=env.store)
    model = tmp_path / "good" / "output" / "model" / "model.onnx"
    assert model in files
    layout = export_of(env.store.get(job.job_id))
    stored = Path(layout.datastore.fs_path(layout.path("output/model/model.onnx")))
    stored.write_bytes(stored.read_bytes()[:-1] + b"\0")  # same size, one byte changed
    with pytest.raises(IntegrityError, match="sha256"):
        service.fetch(job.job_id, tmp_path / "bad", store=env.store)
    assert not (tmp_path / "bad" / "output" / "model" / "model.onnx").exists()
    # By export URL (no job record needed) the same check applies.
    with pytest.raises(IntegrityError):
        service.fetch(str(job.export_root), tmp_path / "bad-url", store=env.store)


def test_remote_status_and_logs_from_a_machine_that_never_saw_the_job(
    env: HostEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = env.submit(write_workflow(tmp_path / "wf", workflow_id="far", sleep_s=2.0)).job
    assert job is not None
    datastore_url = (env.home / "datastore").as_uri()
    # Another machine: its own OLIVINE_HOME, an empty job store, the datastore named in its hosts file.
    other = tmp_path / "other-home"
    other.mkdir()
    (other / "hosts.yaml").write_text(f"datastores:\n  team: {{url: {datastore_url}}}\n")
    monkeypatch.setenv("OLIVINE_HOME", str(other))
    followed = list(service.remote_logs("team", "far", follow=True, poll_s=0.2))
    assert f"job {job.job_id} SUCCEEDED: succeeded; best model" in "\n".join(followed)
    status = service.remote_status("team", "far")
    # The worker writes its final status, then seals the export: a reader may come in between.
    deadline = time.monotonic() + 30
    while not status["sealed"] and time.monotonic() < deadline:
        time.sleep(0.1)
        status = service.remote_status("team", "far")
    assert status["state"] == "SUCCEEDED" and status["job_id"] == job.job_id and status["sealed"]
    assert status["paths"]["output"] == f"{job.export_root}/output" and not status["stale"]
    assert status["best_metrics"]["wait-done"]["value"] == 1.0
    by_url = service.remote_status(datastore_url, "far", timestamp=status["timestamp"])
    assert by_url["job_id"] == job.job_id
    assert list(service.remote_logs(datastore_url, "far")) == followed
    assert not (other / "jobs.db").exists()


def test_remote_logs_of_a_job_fall_back_to_the_export_when_the_job_folder_is_gone(
    env: HostEnv, tmp_path: Path
) -> None:
    job = env.submit(write_workflow(tmp_path / "wf")).job
    assert job is not None and env.wait(job.job_id).state is JobStatus.SUCCEEDED
    local = list(service.logs(job.job_id, store=env.store))
    shutil.rmtree(str(job.job_dir))
    exported = list(service.logs(job.job_id, follow=True, store=env.store))
    assert exported == local and any(f"job {job.job_id} SUCCEEDED" in line for line in exported)


def test_remote_resubmission_seeds_from_the_latest_export_and_overwrites_nothing(
    env: HostEnv, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = write_workflow(
        tmp_path / "wf", workflow_id="again", passes={"q": {"type": "OnnxDynamicQuantization"}}
    )
    first = env.submit(config).job
    assert first is not None and env.wait(first.job_id).state is JobStatus.SUCCEEDED
    first_layout = export_of(env.store.get(first.job_id))
    before = {
        p: p.read_bytes()
        for p in Path(first_layout.datastore.fs_path(first_layout.root)).rglob("*")
        if p.is_file()
    }

    with caplog.at_level("INFO", logger="olivine.hosts"):
        second = env.submit(config).job
    assert second is not None and second.resume_from == first_layout.url
    assert f"seeding cache from {first_layout.url}" in caplog.text
    done = env.wait(second.job_id)
    assert done.state is JobStatus.SUCCEEDED, done.message
    log = "\n".join(service.logs(second.job_id, store=env.store))
    assert f"seeding cache from {first_layout.url}" in log and "'q': cache hit" in log
    assert done.export_root != first_layout.url
    after = {
        p: p.read_bytes()
        for p in Path(first_layout.datastore.fs_path(first_layout.root)).rglob("*")
        if p.is_file()
    }
    assert after == before and verify(first_layout.datastore, first_layout) == []

    fresh = env.submit(config, fresh=True).job
    assert fresh is not None and fresh.resume_from is None
    assert env.wait(fresh.job_id).state is JobStatus.SUCCEEDED
    log = "\n".join(service.logs(fresh.job_id, store=env.store))
    assert "'q': running" in log and "cache hit" not in log and "seeding" not in log
    exports = list_exports(first_layout.datastore, "again")
    assert len({e.root for e in exports}) == 3
    versions = {v.version: v.state for v in service.assets_list()[0].versions}
    assert versions == {e.folder: "SUCCEEDED" for e in exports}
