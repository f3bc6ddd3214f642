"""Request counts on the wire (through the metering proxy) stay bounded for the operations that a local
disk makes free: reading an export's index, listing a workflow's exports, listing assets, reading
status, appending log chunks."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from cloud_servers import Cloud
from olivine.datastores import Exporter, claim_export, list_exports, register
from olivine.datastores.assets import catalog
from olivine.datastores.index import CHECKPOINT_EVERY, read_index

T0 = datetime(2025, 3, 4, 5, 6, 7, tzinfo=timezone.utc)


def test_object_store_request_counts_are_bounded(cloud: Cloud, tmp_path: Path) -> None:
    ds = cloud.open()
    for i in range(12):  # other workflows' exports: not read when listing ours
        claim_export(ds, f"other-{i}", T0 + timedelta(seconds=i))
    layout = claim_export(ds, "wf", T0)
    claim_export(ds, "wf", T0 + timedelta(hours=1))
    exporter = Exporter(ds, layout)
    for i in range(3 * CHECKPOINT_EVERY):  # one index segment per call
        (tmp_path / f"f{i}").write_bytes(b"x" * i)
        exporter.export_file(tmp_path / f"f{i}", f"cache/f{i}")
    exporter.write_status({"state": "RUNNING"})
    for v in range(10):
        register(ds, "wf", T0 + timedelta(minutes=v), {"status": {"state": "SUCCEEDED"}})

    cloud.proxy.take()
    assert len(read_index(ds, layout)) == 3 * CHECKPOINT_EVERY
    index_requests = cloud.proxy.take().requests
    assert index_requests <= 2 + CHECKPOINT_EVERY, index_requests

    assert [e.folder for e in list_exports(ds, "wf")] == ["2025-03-04-05-06-07", "2025-03-04-06-06-07"]
    assert cloud.proxy.take().requests <= 2

    assert len(catalog(ds)["wf"]) == 10
    assert cloud.proxy.take().requests <= 2

    assert layout.read_status() == {"state": "RUNNING"}
    assert cloud.proxy.take().requests == 1

    exporter.append_log("line\n")  # warm: finds the first free chunk number
    cloud.proxy.take()
    for _ in range(5):
        exporter.append_log("another line\n")
    assert cloud.proxy.take().requests == 5  # one create-only put per chunk; no index segment each


def test_object_store_listing_a_new_workflow_is_bounded_on_a_datastore_with_old_exports(
    cloud: Cloud,
) -> None:
    """Exports made before markers existed cost one scan, once: the first claim backfills their
    markers; after it, listing any workflow (one with no exports at all too) is at most 2 requests."""
    ds = cloud.open()
    for i in range(20):  # an old datastore: exports with no markers
        ds.put_bytes(f"2024-01-01-00-00-{i:02d}/old-{i}/cache/x", b"x")
    claim_export(ds, "wf", T0)
    fresh = cloud.open()  # as another process would: nothing remembered
    cloud.proxy.take()
    assert list_exports(fresh, "never-ran") == []
    assert cloud.proxy.take().requests <= 2
    assert [e.folder for e in list_exports(fresh, "old-7")] == ["2024-01-01-00-00-07"]
    assert cloud.proxy.take().requests <= 2
    # A submit of a new workflow: the flag, the claim (read, folder check, create, marker), the
    # container check on the first write: a constant, whatever the number of old exports.
    claim_export(fresh, "new-wf", T0)
    assert cloud.proxy.take().requests <= 8
