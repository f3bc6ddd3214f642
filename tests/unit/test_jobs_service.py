"""Submitting: host and datastore selection, dry runs, and credentials that never leave the hosts file."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from olivine.datastores.base import BACKENDS, Datastore
from olivine.datastores.exporter import Exporter
from olivine.datastores.layout import claim_export
from olivine.datastores.local import LocalDatastore, local_path_of
from olivine.errors import JobNotFoundError, ReferenceNotFoundError, UserInputError
from olivine.hosts import service
from olivine.hosts.process import job_process_alive, process_start_ticks, worker_pid
from olivine.jobs.folder import JobFolder
from olivine.jobs.profiles import Profiles
from olivine.jobs.records import JobRecord, JobStatus, utc_now
from olivine.jobs.store import JobStore
from tiny_models import write_onnx_mlp

SECRET = "sup3r-s3cret-account-key"


class KeyedDatastore(LocalDatastore):
    """A local folder that, like a blob store, is opened with an account key (checked, then unused)."""

    scheme = "keyed"

    @classmethod
    def open_url(cls, url: str, options: dict[str, Any]) -> LocalDatastore:
        assert options == {"account_name": "dev", "account_key": SECRET}, "credentials did not arrive"
        return cls(local_path_of("file://" + url.split("://", 1)[1]))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("OLIVINE_HOME", str(home))
    yield home
    for job in JobStore(home / "jobs.db").list() if (home / "jobs.db").exists() else []:
        if job_process_alive(job):
            os.killpg(int(str(worker_pid(job))), signal.SIGKILL)


def _config(folder: Path, **extra: Any) -> Path:
    model = write_onnx_mlp(folder / "model")
    path = folder / "wf.json"
    path.write_text(
        json.dumps({"workflow_id": "wf", "input_model": {**model, "model_path": "model"}, **extra})
    )
    return path


def _hosts(home: Path, text: str) -> Profiles:
    (home / "hosts.yaml").write_text(text)
    (home / "hosts.yaml").chmod(0o600)
    return Profiles(home / "hosts.yaml")


def test_submit_dry_run_plans_without_writing_anything(home: Path, tmp_path: Path) -> None:
    config = _config(tmp_path / "src")
    result = service.submit(config, dry_run=True)
    assert result.job is None and not result.created
    assert list(home.iterdir()) == []
    text = result.plan.describe()
    assert "host 'local-worker' (LocalWorker" in text
    assert f"export to {(home / 'datastore').resolve().as_uri()}/" in text and text.count("/wf") >= 1
    assert "input_model.model_path: model (dir, 1 file" in text


def test_submit_host_comes_from_argument_then_workflow_then_hosts_file(home: Path, tmp_path: Path) -> None:
    profiles = _hosts(
        home, "default_host: box\nhosts:\n  box: {type: LocalWorker}\n  other: {type: LocalSystem}\n"
    )
    config = _config(tmp_path / "src", systems={"wfhost": {"type": "LocalWorker"}}, workflow_host="wfhost")
    assert (
        "host 'other' (LocalSystem"
        in service.submit(config, host_name="other", dry_run=True, profiles=profiles).plan.host
    )
    assert "host 'wfhost'" in service.submit(config, dry_run=True, profiles=profiles).plan.host
    plain = _config(tmp_path / "plain")
    assert "host 'box'" in service.submit(plain, dry_run=True, profiles=profiles).plan.host


def test_submit_unknown_host_names_both_places_it_looked(home: Path, tmp_path: Path) -> None:
    profiles = _hosts(home, "hosts:\n  box: {type: LocalWorker}\n")
    with pytest.raises(ReferenceNotFoundError, match=r"host 'gpu' is neither .* \(defined: box\)"):
        service.submit(_config(tmp_path / "src"), host_name="gpu", dry_run=True, profiles=profiles)


def test_submit_datastore_comes_from_the_host_config_or_a_url(home: Path, tmp_path: Path) -> None:
    profiles = _hosts(
        home,
        f"hosts:\n  box: {{type: LocalWorker, datastores: team}}\n"
        f"datastores:\n  team: {{url: {(tmp_path / 'team').as_uri()}}}\n",
    )
    config = _config(tmp_path / "src")
    plan = service.submit(config, host_name="box", dry_run=True, profiles=profiles).plan
    assert plan.export_root.startswith((tmp_path / "team").as_uri() + "/")
    url = (tmp_path / "adhoc").as_uri()
    plan = service.submit(config, host_name="box", datastore=url, dry_run=True, profiles=profiles).plan
    assert plan.export_root.startswith(url + "/")
    with pytest.raises(ReferenceNotFoundError, match="datastore 'nope'"):
        service.submit(config, datastore="nope", dry_run=True, profiles=profiles)


@pytest.fixture
def keyed_backend() -> Iterator[None]:
    BACKENDS.register("keyed", f"{__name__}:KeyedDatastore")
    yield
    BACKENDS._entries.pop("keyed")  # the registry has no unregister; keep other tests' view unchanged


@pytest.mark.usefixtures("keyed_backend")
def test_submit_keeps_credentials_in_the_hosts_file(home: Path, tmp_path: Path) -> None:
    profiles = _hosts(
        home,
        f"datastores:\n  blob:\n    url: keyed://{tmp_path / 'blob'}\n"
        f"    options: {{account_name: dev, account_key: {SECRET}}}\n",
    )
    job = service.submit(_config(tmp_path / "src"), datastore="blob", profiles=profiles).job
    assert job is not None and job.datastore_name == "blob"
    # The worker process has no "keyed" backend, so it fails; its message must not leak either.
    done = service.wait(job.job_id, timeout_s=60)
    assert done.state is JobStatus.FAILED
    spec = json.loads((Path(str(job.job_dir)) / "job.json").read_text())
    assert spec["datastore_profile"] == "blob" and spec["datastore_options"] == {"account_name": "dev"}
    for path in [home / "jobs.db", JobFolder(Path(str(job.job_dir))).log, *(tmp_path / "blob").rglob("*")]:
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_submit_resume_from_an_unknown_job_is_job_not_found(home: Path, tmp_path: Path) -> None:
    with pytest.raises(JobNotFoundError):
        service.submit(_config(tmp_path / "src"), resume_from="job-missing", dry_run=True)


def test_status_of_an_unknown_job_is_job_not_found(home: Path) -> None:
    with pytest.raises(JobNotFoundError, match="no job matches 'job-nope'"):
        service.status("job-nope")


def test_submit_fresh_and_resume_from_exclude_each_other(home: Path, tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="fresh and resume_from"):
        service.submit(_config(tmp_path / "src"), resume_from="job-x", fresh=True, dry_run=True)


def test_submit_plans_to_seed_from_the_newest_export_that_has_a_cache(home: Path, tmp_path: Path) -> None:
    datastore = Datastore.from_url((home / "datastore").as_uri())
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)  # in the past: future-dated exports never seed
    with_cache = Exporter(datastore, claim_export(datastore, "wf", start))
    (tmp_path / "run.json").write_text("{}")
    with_cache.export_file(tmp_path / "run.json", "cache/runs/abc/run.json")
    claim_export(datastore, "wf", start + timedelta(hours=1))  # newer, but nothing in it yet
    claim_export(datastore, "other", start + timedelta(hours=2))
    config = _config(tmp_path / "src")
    plan = service.submit(config, dry_run=True).plan
    assert plan.resume_from == with_cache.layout.url
    assert f"seeding cache from {with_cache.layout.url}" in plan.describe()
    assert service.submit(config, dry_run=True, fresh=True).plan.resume_from is None


def test_status_fails_a_pending_job_whose_submitter_is_gone(home: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    ticks = process_start_ticks(proc.pid)
    proc.wait()
    store = JobStore.default()
    record = JobRecord(
        "job-00000000aa",
        "sub-aa",
        "wf",
        "worker",
        "LocalWorker",
        host_config={"type": "LocalWorker"},
        created_at=utc_now() - timedelta(minutes=5),
        host_info={"submitter": {"pid": proc.pid, "start_ticks": ticks, "host": socket.gethostname()}},
    )
    store.create(record)
    assert [j.state for j in service.list_jobs()] == [JobStatus.FAILED]
    assert "submitting process" in service.status(record.job_id).message
    assert store.get(record.job_id).state is JobStatus.PENDING  # reading wrote nothing
    [monitored] = service.monitor(store=store)
    assert monitored.state is JobStatus.FAILED and store.get(record.job_id) == monitored
