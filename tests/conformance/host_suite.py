"""The conformance suite every host must pass (in the manner of fsspec's ``tests/abstract``).

A host's test module subclasses :class:`HostSuite` and provides a ``host_env`` fixture returning a
:class:`HostEnv` (OLIVINE_HOME set to a temporary folder, the host defined in the hosts file there, and
a way to kill the worker of a job the test started). Every test goes through
:mod:`olivine.hosts.service`, the path users take.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from olivine.datastores.base import Datastore
from olivine.datastores.layout import ExportLayout, list_exports
from olivine.datastores.manifest import read_manifest
from olivine.hosts import service
from olivine.jobs.profiles import Profiles
from olivine.jobs.records import ErrorKind, JobRecord, JobStatus
from olivine.jobs.store import JobStore

_METRIC_SCRIPT = """import time


def evaluate(model, device, execution_providers, sleep_s=0.0):
    time.sleep(sleep_s)
    return 1.0
"""


@dataclass
class HostEnv:
    """What the suite needs from a host's test module.

    Attributes:
        home: the OLIVINE_HOME of the test (holds the job store, hosts file and default datastore).
        host_name: the host to submit to (defined in ``home/hosts.yaml``).
        kill_worker: kills the worker of a job the test started, as a crash would (no cleanup).
        submit_budget_s: how long a submit may take.
        job_timeout_s: how long a tiny job may take end to end.
        detached: whether the host's jobs outlive the submitting process (tests of detachment, fast
            submission and cancelling from another call are skipped otherwise).
    """

    home: Path
    host_name: str
    kill_worker: Callable[[JobRecord], None]
    submit_budget_s: float = 1.0
    job_timeout_s: float = 120.0
    detached: bool = True

    def require_detached(self) -> None:
        if not self.detached:
            pytest.skip("the host runs jobs in the foreground")

    @property
    def store(self) -> JobStore:
        return JobStore(self.home / "jobs.db")

    @property
    def profiles(self) -> Profiles:
        return Profiles(self.home / "hosts.yaml")

    def submit(self, config: Path, **kwargs: Any) -> service.Submission:
        return service.submit(
            config, host_name=self.host_name, store=self.store, profiles=self.profiles, **kwargs
        )

    def wait(self, job_id: str, timeout_s: float | None = None) -> JobRecord:
        return service.wait(job_id, timeout_s=timeout_s or self.job_timeout_s, store=self.store)

    def wait_for(
        self, job_id: str, accept: Callable[[JobRecord], bool], timeout_s: float = 60.0
    ) -> JobRecord:
        deadline = time.monotonic() + timeout_s
        while True:
            job = service.status(job_id, store=self.store)
            if accept(job) or job.state.is_terminal() or time.monotonic() > deadline:
                return job
            time.sleep(0.1)


def write_workflow(
    folder: Path,
    *,
    workflow_id: str = "conf",
    sleep_s: float | None = None,
    passes: dict[str, Any] | None = None,
    evaluate_input_model: bool = True,
) -> Path:
    """A tiny ONNX workflow in ``folder``; with ``sleep_s``, evaluating each model takes that long."""
    from tiny_models import write_onnx_mlp

    model = write_onnx_mlp(folder / "model")
    config: dict[str, Any] = {
        "workflow_id": workflow_id,
        "input_model": {**model, "model_path": "model"},
        "passes": passes or {},
    }
    if sleep_s is not None:
        (folder / "metric.py").write_text(_METRIC_SCRIPT)
        config["evaluators"] = {
            "slow": {
                "metrics": [
                    {
                        "name": "wait",
                        "type": "custom",
                        "user_config": {
                            "user_script": "metric.py",
                            "evaluate_func": "evaluate",
                            "evaluate_func_kwargs": {"sleep_s": sleep_s},
                        },
                        "sub_types": [{"name": "done", "higher_is_better": True}],
                    }
                ]
            }
        }
        config["engine"] = {"evaluator": "slow", "evaluate_input_model": evaluate_input_model}
    path = folder / "workflow.json"
    path.write_text(json.dumps(config, indent=2))
    return path


def export_of(job: JobRecord) -> ExportLayout:
    assert job.export_root is not None
    base, folder, workflow_id = job.export_root.rsplit("/", 2)
    return ExportLayout.from_folder(Datastore.from_url(base), folder, workflow_id)


class HostSuite:
    """Tests every host must pass. Subclasses provide the ``host_env`` fixture."""

    def test_host_submit_returns_fast_and_persists_the_record_first(
        self, host_env: HostEnv, tmp_path: Path
    ) -> None:
        host_env.require_detached()
        config = write_workflow(tmp_path / "wf")
        started = time.perf_counter()
        submission = host_env.submit(config)
        elapsed_s = time.perf_counter() - started
        job = submission.job
        assert job is not None and submission.created
        assert elapsed_s < host_env.submit_budget_s, f"submit took {elapsed_s:.2f}s"
        assert host_env.store.get(job.job_id).submission_id == job.submission_id
        done = host_env.wait(job.job_id)
        assert done.state is JobStatus.SUCCEEDED, done.message
        # The record existed before the worker ran: the worker only ever updated it.
        assert done.created_at <= done.started_at <= done.ended_at  # type: ignore[operator]

    def test_host_resubmitting_a_submission_id_returns_the_same_job(
        self, host_env: HostEnv, tmp_path: Path
    ) -> None:
        config = write_workflow(tmp_path / "wf")
        first = host_env.submit(config, submission_id="same-request")
        again = host_env.submit(config, submission_id="same-request")
        assert first.job is not None and again.job is not None
        assert again.job.job_id == first.job.job_id and not again.created
        host_env.wait(first.job.job_id)
        assert [j.job_id for j in host_env.store.list()] == [first.job.job_id]
        layout = export_of(first.job)
        assert [e.root for e in list_exports(layout.datastore, "conf")] == [layout.root]

    def test_host_job_succeeds_with_status_progress_and_sealed_export(
        self, host_env: HostEnv, tmp_path: Path
    ) -> None:
        quant = {"quant": {"type": "OnnxDynamicQuantization"}}
        job = host_env.submit(write_workflow(tmp_path / "wf", sleep_s=0.0, passes=quant)).job
        assert job is not None
        done = host_env.wait(job.job_id)
        assert done.state is JobStatus.SUCCEEDED, done.message
        assert done.error_kind is None and done.progress == (1, 1)
        assert done.best_metrics["wait-done"]["value"] == 1.0
        layout = export_of(done)
        status = layout.read_status()
        assert status is not None and status["state"] == "SUCCEEDED"
        assert status["schema"] == "olivine.status/1"
        assert status["progress"] == {"done": 1, "total": 1, "candidates_done": 1, "candidates_total": 1}
        assert status["best_metrics"] == done.best_metrics
        assert status["best"]["candidate_id"] == "c0001" and status["phase"] is None
        assert status["paths"]["output"] == f"{done.export_root}/output"
        manifest = read_manifest(layout.datastore, layout)
        assert manifest is not None and manifest["status"]["state"] == "SUCCEEDED"
        paths = {f["path"] for f in manifest["files"]}
        assert "output/model/model.onnx" in paths
        assert any(p.startswith("cache/runs/") and p.endswith("run.json") for p in paths)
        # Two evaluation records (input model, quantized model), one log stream.
        assert sum(p.startswith("cache/evaluations/") for p in paths) == 2
        assert any(p.startswith("logs/worker/") for p in paths)

    def test_host_resubmission_is_seeded_and_readable_from_the_datastore_alone(
        self, host_env: HostEnv, tmp_path: Path
    ) -> None:
        config = write_workflow(tmp_path / "wf", passes={"quant": {"type": "OnnxDynamicQuantization"}})
        first = host_env.submit(config).job
        assert first is not None and host_env.wait(first.job_id).state is JobStatus.SUCCEEDED
        second = host_env.submit(config).job
        assert second is not None and host_env.wait(second.job_id).state is JobStatus.SUCCEEDED
        assert second.resume_from == host_env.store.get(first.job_id).export_root
        # What a machine without these job records sees: the newest export, its status and its log.
        datastore = export_of(second).datastore.url_for()
        status = service.remote_status(datastore, "conf")
        assert status["job_id"] == second.job_id and status["state"] == "SUCCEEDED" and status["sealed"]
        log = "\n".join(service.remote_logs(datastore, "conf"))
        assert "'quant': cache hit" in log and f"job {second.job_id} SUCCEEDED" in log

    def test_host_logs_follow_until_the_job_ends(self, host_env: HostEnv, tmp_path: Path) -> None:
        job = host_env.submit(write_workflow(tmp_path / "wf")).job
        assert job is not None
        lines = list(service.logs(job.job_id, follow=True, store=host_env.store))
        assert service.status(job.job_id, store=host_env.store).state.is_terminal()
        text = "\n".join(lines)
        assert f"job {job.job_id} SUCCEEDED" in text

    def test_host_cancel_stops_a_running_job_gracefully(self, host_env: HostEnv, tmp_path: Path) -> None:
        host_env.require_detached()
        # The stop is seen between steps: after the slow input-model evaluation, before the pass.
        quant = {"quant": {"type": "OnnxDynamicQuantization"}}
        job = host_env.submit(write_workflow(tmp_path / "wf", sleep_s=3.0, passes=quant)).job
        assert job is not None
        running = host_env.wait_for(job.job_id, lambda j: j.state is JobStatus.RUNNING)
        assert running.state is JobStatus.RUNNING
        cancelled = service.cancel(job.job_id, timeout_s=30, store=host_env.store)
        assert cancelled.state is JobStatus.CANCELLED and cancelled.error_kind is ErrorKind.CANCELLED
        assert cancelled.message == "cancelled"  # stopped by itself, not killed after the grace period
        manifest = read_manifest(export_of(cancelled).datastore, export_of(cancelled))
        assert manifest is not None and manifest["status"]["state"] == "CANCELLED"

    def test_host_cancel_forces_a_worker_that_does_not_stop(self, host_env: HostEnv, tmp_path: Path) -> None:
        host_env.require_detached()
        job = host_env.submit(write_workflow(tmp_path / "wf", sleep_s=60.0)).job
        assert job is not None
        host_env.wait_for(job.job_id, lambda j: j.state is JobStatus.RUNNING)
        time.sleep(2.0)  # inside the 60 s evaluation: the stop request is seen only after it
        started = time.perf_counter()
        cancelled = service.cancel(job.job_id, timeout_s=0.5, store=host_env.store)
        assert time.perf_counter() - started < 10
        assert cancelled.state is JobStatus.CANCELLED and "killed" in cancelled.message

    def test_host_cancel_of_a_finished_job_changes_nothing(self, host_env: HostEnv, tmp_path: Path) -> None:
        job = host_env.submit(write_workflow(tmp_path / "wf")).job
        assert job is not None
        done = host_env.wait(job.job_id)
        assert service.cancel(job.job_id, store=host_env.store) == done

    def test_host_marks_a_dead_worker_failed_and_keeps_its_finished_steps(
        self, host_env: HostEnv, tmp_path: Path
    ) -> None:
        host_env.require_detached()
        # The pass runs first; then evaluating its output takes a minute, and the worker dies in it.
        quant = {"quant": {"type": "OnnxDynamicQuantization"}}
        config = write_workflow(tmp_path / "wf", sleep_s=60.0, passes=quant, evaluate_input_model=False)
        job = host_env.submit(config).job
        assert job is not None
        running = host_env.wait_for(job.job_id, lambda j: "evaluating" in (j.current_pass or ""))
        assert running.state is JobStatus.RUNNING, running.message
        host_env.kill_worker(running)
        failed = host_env.wait_for(job.job_id, lambda j: j.state.is_terminal(), timeout_s=15)
        assert failed.state is JobStatus.FAILED
        assert failed.error_kind is ErrorKind.INFRASTRUCTURE
        assert "died" in failed.message, failed.message
        # What finished before the crash was exported as it finished.
        layout = export_of(failed)
        exported = [rel for rel, _ in layout.datastore.walk_files(layout.cache)]
        assert any(rel.endswith("run.json") for rel in exported)
        status = layout.read_status()
        assert status is not None and "evaluating" in status["phase"]

    def test_host_job_outlives_the_submitting_process(self, host_env: HostEnv, tmp_path: Path) -> None:
        host_env.require_detached()
        config = write_workflow(tmp_path / "wf")
        code = (
            "import sys; from olivine.hosts import service;"
            "from olivine.jobs.store import JobStore; from olivine.jobs.profiles import Profiles;"
            "s = service.submit(sys.argv[1], host_name=sys.argv[2], store=JobStore(sys.argv[3]),"
            " profiles=Profiles(sys.argv[4])); print(s.job.job_id)"
        )
        args = [str(config), host_env.host_name, str(host_env.store.path), str(host_env.profiles.path)]
        out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        job_id = out.stdout.strip().splitlines()[-1]
        assert host_env.wait(job_id).state is JobStatus.SUCCEEDED
