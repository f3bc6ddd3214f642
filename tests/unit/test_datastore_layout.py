"""Export folders: timestamps, paths from the spec, claims and listing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from olivine.datastores import ExportLayout, claim_export, parse_timestamp_folder, timestamp_folder
from olivine.datastores.local import LocalDatastore
from olivine.errors import DatastoreError

T0 = datetime(2024, 12, 31, 23, 59, 58, 750_000, tzinfo=timezone.utc)


def test_timestamp_folder_is_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert timestamp_folder(datetime(2025, 1, 1, 1, 0, 5, tzinfo=plus_two)) == "2024-12-31-23-00-05"


def test_timestamp_folder_refuses_naive_datetime() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        timestamp_folder(datetime(2024, 1, 1))


def test_parse_timestamp_folder_round_trip_and_junk() -> None:
    assert parse_timestamp_folder("2024-12-31-23-59-58") == T0.replace(microsecond=0)
    for junk in ("assets", "2024-13-01-00-00-00", "2024-12-31", "2024-12-31-23-59-58x"):
        assert parse_timestamp_folder(junk) is None


def test_export_layout_paths_follow_the_spec(tmp_path: Path) -> None:
    layout = ExportLayout(LocalDatastore(tmp_path), T0, "my_wf.v1")
    assert layout.root == "2024-12-31-23-59-58/my_wf.v1"
    assert layout.cache == "2024-12-31-23-59-58/my_wf.v1/cache"
    assert layout.output == "2024-12-31-23-59-58/my_wf.v1/output"
    assert layout.logs == "2024-12-31-23-59-58/my_wf.v1/logs"
    assert layout.manifest == "2024-12-31-23-59-58/my_wf.v1/manifest.json"
    assert layout.status == "2024-12-31-23-59-58/my_wf.v1/status.json"
    assert layout.timestamp.microsecond == 0
    assert layout.url == (tmp_path / "2024-12-31-23-59-58" / "my_wf.v1").as_uri()


def test_export_layout_refuses_unsafe_workflow_id(tmp_path: Path) -> None:
    for bad in ("../x", "a/b", "", ".hidden"):
        with pytest.raises(ValueError):
            ExportLayout(LocalDatastore(tmp_path), T0, bad)


def test_claim_export_skips_folder_made_by_someone_else(tmp_path: Path) -> None:
    ds = LocalDatastore(tmp_path)
    ds.put_bytes("2024-12-31-23-59-58/wf/output/foreign.txt", b"not ours")
    assert claim_export(ds, "wf", T0).folder == "2024-12-31-23-59-59"


def test_claim_export_gives_up_after_max_tries(tmp_path: Path) -> None:
    ds = LocalDatastore(tmp_path)
    claim_export(ds, "wf", T0)
    claim_export(ds, "wf", T0)
    with pytest.raises(DatastoreError, match="no free export folder"):
        claim_export(ds, "wf", T0, max_tries=2)


def test_claim_export_defaults_to_now(tmp_path: Path) -> None:
    before = datetime.now(timezone.utc).replace(microsecond=0)
    layout = claim_export(LocalDatastore(tmp_path), "wf")
    assert before <= layout.timestamp <= datetime.now(timezone.utc)
    assert layout.read_status() is None
