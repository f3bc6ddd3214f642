"""The LocalWorker host: the host conformance suite, plus bundling, resume and fetch end to end.

Every test runs with OLIVINE_HOME in a temporary folder and kills, at the end, only the worker
processes of the jobs it submitted.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.host_suite import HostEnv, HostSuite, export_of, write_workflow
from olivine.datastores.manifest import verify
from olivine.hosts import service
from olivine.hosts.process import job_process_alive, worker_pid
from olivine.jobs.records import ErrorKind, JobRecord, JobStatus

pytestmark = pytest.mark.integration


def _kill(job: JobRecord) -> None:
    # The worker leads its own session: its pid is its process group id.
    pid = worker_pid(job)
    assert pid is not None and job_process_alive(job)
    os.killpg(pid, signal.SIGKILL)


def _env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, host: str, detached: bool) -> HostEnv:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("OLIVINE_HOME", str(home))
    (home / "hosts.yaml").write_text(
        "hosts:\n  worker: {type: LocalWorker, cancel_grace_s: 20}\n  here: {type: LocalSystem}\n"
    )
    return HostEnv(home=home, host_name=host, kill_worker=_kill, detached=detached)


@pytest.fixture
def host_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HostEnv]:
    env = _env(tmp_path, monkeypatch, "worker", detached=True)
    yield env
    for job in env.store.list():
        if job_process_alive(job):
            _kill(job)


class TestLocalWorkerConformance(HostSuite):
    pass


class TestLocalSystemConformance(HostSuite):
    """The foreground host: the same contract, minus what only detached hosts promise."""

    @pytest.fixture
    def host_env(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HostEnv:
        return _env(tmp_path, monkeypatch, "here", detached=False)


def test_local_worker_runs_after_the_original_files_are_deleted(host_env: HostEnv, tmp_path: Path) -> None:
    # Without passes the output is a copy of the input model: the worker must read it from the bundle.
    job = host_env.submit(write_workflow(tmp_path / "wf")).job
    shutil.rmtree(tmp_path / "wf")
    assert job is not None
    done = host_env.wait(job.job_id)
    assert done.state is JobStatus.SUCCEEDED, done.message
    assert (Path(str(done.job_dir)) / "output" / "model" / "model.onnx").is_file()


def test_local_worker_survives_sighup(host_env: HostEnv, tmp_path: Path) -> None:
    job = host_env.submit(write_workflow(tmp_path / "wf", sleep_s=2.0)).job
    assert job is not None
    running = host_env.wait_for(
        job.job_id, lambda j: j.state is JobStatus.RUNNING and worker_pid(j) is not None
    )
    os.killpg(int(str(worker_pid(running))), signal.SIGHUP)  # what a closing terminal sends
    assert host_env.wait(job.job_id).state is JobStatus.SUCCEEDED


def test_local_worker_resume_reuses_the_exported_cache(host_env: HostEnv, tmp_path: Path) -> None:
    config = write_workflow(tmp_path / "wf", passes={"quant": {"type": "OnnxDynamicQuantization"}})
    first = host_env.submit(config).job
    assert first is not None and host_env.wait(first.job_id).state is JobStatus.SUCCEEDED
    # The first job's local cache is gone: only its export can seed the resumed run.
    shutil.rmtree(Path(str(first.job_dir)) / "cache")
    second = service.resume(first.job_id, store=host_env.store, profiles=host_env.profiles).job
    assert second is not None and second.resume_from == host_env.store.get(first.job_id).export_root
    done = host_env.wait(second.job_id)
    assert done.state is JobStatus.SUCCEEDED, done.message
    log = "\n".join(service.logs(second.job_id, store=host_env.store))
    assert "cached file(s) seeded" in log and "cache hit" in log


def test_local_worker_fetch_downloads_a_verified_output(host_env: HostEnv, tmp_path: Path) -> None:
    job = host_env.submit(write_workflow(tmp_path / "wf")).job
    assert job is not None and host_env.wait(job.job_id).state is JobStatus.SUCCEEDED
    files = service.fetch(job.job_id, tmp_path / "fetched", store=host_env.store)
    assert tmp_path / "fetched" / "output" / "model" / "model.onnx" in files
    layout = export_of(host_env.store.get(job.job_id))
    assert verify(layout.datastore, layout, tmp_path / "fetched", "output") == []


def test_local_worker_pass_failure_is_failed_with_kind_workflow(host_env: HostEnv, tmp_path: Path) -> None:
    # OnnxConversion takes a PyTorch or HF model: on an ONNX model the pass fails at run time.
    config = write_workflow(tmp_path / "wf", passes={"convert": {"type": "OnnxConversion"}})
    job = host_env.submit(config).job
    assert job is not None
    done = host_env.wait(job.job_id)
    assert done.state is JobStatus.FAILED
    assert done.error_kind is ErrorKind.WORKFLOW and "pass 'convert' failed" in done.message
    status = export_of(done).read_status()
    assert status is not None and status["state"] == "FAILED" and status["error_kind"] == "workflow"
