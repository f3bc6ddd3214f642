"""Re-attaching from a datastore alone: finding an export, its status (stale or not), following its log."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from olivine.datastores.base import Datastore
from olivine.datastores.exporter import Exporter
from olivine.datastores.layout import ExportLayout, claim_export
from olivine.errors import JobNotFoundError, ReferenceNotFoundError
from olivine.hosts import service
from olivine.jobs.profiles import Profiles
from olivine.jobs.remote import follow_log

T0 = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Datastore:
    monkeypatch.setenv("OLIVINE_HOME", str(tmp_path / "home"))
    return Datastore.from_url((tmp_path / "ds").as_uri())


def _export(store: Datastore, at: datetime = T0, workflow_id: str = "wf") -> Exporter:
    return Exporter(store, claim_export(store, workflow_id, at))


def _status(state: str, *, age_s: float = 0.0, heartbeat_s: float = 30.0) -> dict[str, object]:
    updated = datetime.now(timezone.utc) - timedelta(seconds=age_s)
    return {"job_id": "job-1", "state": state, "heartbeat_s": heartbeat_s, "updated_at": updated.isoformat()}


def test_remote_status_reads_the_newest_export_with_its_paths(store: Datastore) -> None:
    _export(store).write_status(_status("SUCCEEDED"))
    newer = _export(store, T0 + timedelta(hours=1))
    newer.write_status(_status("RUNNING"))
    doc = service.remote_status(store.url_for(), "wf")
    assert doc["state"] == "RUNNING" and doc["timestamp"] == "2030-01-02-04-04-05"
    assert doc["paths"]["output"] == f"{newer.layout.url}/output"
    assert doc["sealed"] is False and doc["stale"] is False
    older = service.remote_status(store.url_for(), "wf", timestamp="2030-01-02-03-04-05")
    assert older["state"] == "SUCCEEDED" and older["stale"] is False


def test_a_sealed_export_reads_the_manifests_verdict_before_the_final_status_lands(store: Datastore) -> None:
    """The worker seals (manifest) and then writes the final status.json: a reader in between saw
    sealed with state RUNNING (a Ray CI run caught it)."""
    exporter = _export(store)
    exporter.write_status(_status("RUNNING"))
    exporter.finalize({"status": _status("SUCCEEDED")}, register_asset=False)
    doc = service.remote_status(store.url_for(), "wf")
    assert doc["sealed"] is True and doc["state"] == "SUCCEEDED" and doc["stale"] is False


def test_remote_status_is_pending_before_the_worker_wrote_anything(store: Datastore) -> None:
    _export(store)
    doc = service.remote_status(store.url_for(), "wf")
    assert doc["state"] == "PENDING" and "not started" in doc["message"] and not doc["stale"]


def test_remote_status_marks_a_running_export_without_heartbeat_stale(store: Datastore) -> None:
    exporter = _export(store)
    exporter.write_status(_status("RUNNING", age_s=3600))
    assert service.remote_status(store.url_for(), "wf")["stale"] is True
    exporter.write_status(_status("FAILED", age_s=3600))  # a final state is never stale
    assert service.remote_status(store.url_for(), "wf")["stale"] is False


def test_remote_status_names_what_is_missing(store: Datastore) -> None:
    with pytest.raises(JobNotFoundError, match="no export of workflow 'wf'"):
        service.remote_status(store.url_for(), "wf")
    _export(store)
    with pytest.raises(JobNotFoundError, match="at 2031-01-01-00-00-00"):
        service.remote_status(store.url_for(), "wf", timestamp="2031-01-01-00-00-00")
    with pytest.raises(JobNotFoundError, match="not an export timestamp"):
        service.remote_status(store.url_for(), "wf", timestamp="yesterday")
    with pytest.raises(ReferenceNotFoundError, match="datastore 'team' is not in"):
        service.remote_status("team", "wf")


def test_remote_status_resolves_a_hosts_file_datastore_name(store: Datastore, tmp_path: Path) -> None:
    _export(store).write_status(_status("SUCCEEDED"))
    hosts = tmp_path / "hosts.yaml"
    hosts.write_text(f"datastores:\n  team: {{url: {store.url_for()}}}\n")
    assert service.remote_status("team", "wf", profiles=Profiles(hosts))["state"] == "SUCCEEDED"


def test_remote_logs_join_lines_split_across_chunks(store: Datastore) -> None:
    exporter = _export(store)
    text = "first line\nsecond ü line\nlast, unterminated"
    data = text.encode()
    cut = data.index("ü".encode()) + 1  # inside the two-byte character
    exporter.append_log(data[:5])
    exporter.append_log(data[5:cut])
    exporter.append_log(data[cut:])
    assert list(service.remote_logs(store.url_for(), "wf")) == text.split("\n")


def test_remote_logs_follow_until_the_status_is_final(store: Datastore) -> None:
    exporter = _export(store)
    exporter.write_status(_status("RUNNING"))
    exporter.append_log("one\n")

    def worker() -> None:
        time.sleep(0.3)
        exporter.append_log("two\n")
        time.sleep(0.3)
        exporter.append_log("three\n")  # shipped before the final status, as the worker does
        exporter.write_status(_status("SUCCEEDED"))

    thread = threading.Thread(target=worker)
    thread.start()
    started = time.monotonic()
    lines = list(service.remote_logs(store.url_for(), "wf", follow=True, poll_s=0.05))
    thread.join()
    assert lines == ["one", "two", "three"] and time.monotonic() - started < 10


def test_remote_logs_stop_following_a_stale_export_with_a_warning(
    store: Datastore, caplog: pytest.LogCaptureFixture
) -> None:
    exporter = _export(store)
    exporter.append_log("last words\n")
    exporter.write_status(_status("RUNNING", age_s=3600, heartbeat_s=30))
    with caplog.at_level(logging.WARNING, logger="olivine.jobs.remote"):
        lines = list(service.remote_logs(store.url_for(), "wf", follow=True, poll_s=0.05))
    assert lines == ["last words"] and "probably died" in caplog.text


def test_follow_log_without_a_log_yields_nothing(store: Datastore) -> None:
    layout = ExportLayout(store, T0, "wf")
    assert list(follow_log(layout, None)) == []


def test_worker_heartbeat_rewrites_the_status_and_ships_the_log(store: Datastore, tmp_path: Path) -> None:
    from olivine.jobs.folder import JobFolder
    from olivine.jobs.progress import JobReporter
    from olivine.jobs.records import JobSpec
    from olivine.jobs.worker import _LogShipper

    exporter = _export(store)
    spec = JobSpec(
        "job-1", "wf", "bundle", store.url_for(), exporter.layout.folder, log_export_interval_s=0.05
    )
    reporter = JobReporter(spec, JobFolder(tmp_path))
    reporter.attach(exporter)
    first = service.remote_status(store.url_for(), "wf")
    log = tmp_path / "job.log"
    log.write_text("working\n")
    shipper = _LogShipper(exporter, reporter, log, spec.log_export_interval_s)
    try:
        time.sleep(0.5)
    finally:
        shipper.close()
    beat = service.remote_status(store.url_for(), "wf")
    assert beat["heartbeat_s"] == 0.05 and beat["updated_at"] > first["updated_at"]
    assert list(service.remote_logs(store.url_for(), "wf")) == ["working"]
