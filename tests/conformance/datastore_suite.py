"""The conformance suite every datastore backend must pass.

Use it by subclassing in a test module and providing a fresh, empty ``datastore`` fixture (and, for
backends opened with credentials, a ``secrets`` fixture listing them)::

    from conformance.datastore_suite import DatastoreSuite

    class TestLocalDatastore(DatastoreSuite):
        @pytest.fixture
        def datastore(self, tmp_path):
            return Datastore.from_url(tmp_path.as_uri())

Tampering goes through the raw fsspec filesystem (``datastore.fs``), which every backend has.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from olivine.datastores import (
    Datastore,
    Exporter,
    ExportLayout,
    claim_export,
    fetch,
    latest_export,
    list_assets,
    list_exports,
    read_log,
    register,
    show,
    verify,
)
from olivine.datastores.assets import catalog
from olivine.datastores.index import CHECKPOINT_EVERY, read_index
from olivine.datastores.layout import MARKERS_FLAG
from olivine.errors import DatastoreError, IntegrityError, JobNotFoundError

T0 = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
WORKFLOW = "wf-conf"
BINARY = bytes(range(256)) * 3 + b"\r\n\x00\r"


def make_tree(root: Path) -> Path:
    """A small workflow-like tree: a file above 1 MiB (kernel copy path), small ones, nested folders."""
    files = {
        "cache/runs/abc/model.onnx": os.urandom((1 << 20) + 12345),
        "cache/runs/abc/run.json": b'{"pass": "OnnxConversion"}\n',
        "cache/runs/def/deep/er/weights.bin": BINARY,
        "output/best/model.onnx": os.urandom(50_000),
        "output/footprints.json": b"{}\n",
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def export_tree(datastore: Datastore, src: Path, second: int = 0) -> tuple[ExportLayout, Exporter]:
    layout = claim_export(datastore, WORKFLOW, T0 + timedelta(seconds=second))
    exporter = Exporter(datastore, layout)
    exporter.export_tree(src / "cache", "cache")
    exporter.export_tree(src / "output", "output")
    return layout, exporter


def tamper(datastore: Datastore, rel: str, data: bytes) -> None:
    """Replace a stored file behind the datastore's back (as a user or a bad disk would)."""
    datastore.fs.pipe_file(datastore.fs_path(rel), data)


class DatastoreSuite:
    """Behaviour every backend shares. Needs fixtures ``datastore`` (fresh and empty) and ``secrets``."""

    @pytest.fixture
    def secrets(self) -> list[str]:
        return []

    @pytest.fixture
    def src(self, tmp_path: Path) -> Path:
        return make_tree(tmp_path / "src")

    # -- files ------------------------------------------------------------------------------------
    def test_datastore_put_get_round_trip(self, datastore: Datastore, tmp_path: Path) -> None:
        local = tmp_path / "in.bin"
        local.write_bytes(os.urandom((1 << 20) + 7))
        entry = datastore.put_file(local, "x/in.bin")
        got = datastore.get_file("x/in.bin", tmp_path / "out" / "in.bin")
        assert (tmp_path / "out" / "in.bin").read_bytes() == local.read_bytes()
        assert entry == got
        assert entry.size == local.stat().st_size

    def test_datastore_binary_content_round_trips(self, datastore: Datastore) -> None:
        datastore.put_bytes("bin/all-bytes", BINARY)
        datastore.put_bytes("bin/empty", b"")
        assert datastore.read_bytes("bin/all-bytes") == BINARY
        assert datastore.read_bytes("bin/empty") == b""

    def test_datastore_nested_paths_are_listed(self, datastore: Datastore) -> None:
        datastore.put_bytes("a/b/c/d.txt", b"d")
        datastore.put_bytes("a/b/e.txt", b"ee")
        datastore.put_bytes("a//b/./f.txt", b"fff")  # normalised to a/b/f.txt
        assert datastore.ls("a/b") == ["c", "e.txt", "f.txt"]
        assert datastore.walk_files("a") == [("a/b/c/d.txt", 1), ("a/b/e.txt", 2), ("a/b/f.txt", 3)]

    def test_datastore_exists_ls_walk_when_missing(self, datastore: Datastore) -> None:
        datastore.put_bytes("dir/file", b"x")
        assert datastore.exists("dir/file")
        assert datastore.exists("dir")
        assert not datastore.exists("dir/other")
        assert datastore.ls("nowhere") == []
        assert datastore.walk_files("nowhere") == []
        assert datastore.ls("") == ["dir"]

    def test_datastore_refuses_parent_paths(self, datastore: Datastore) -> None:
        with pytest.raises(DatastoreError, match=r"\.\."):
            datastore.put_bytes("a/../../escape", b"x")

    def test_datastore_get_missing_raises_datastore_error(self, datastore: Datastore, tmp_path: Path) -> None:
        with pytest.raises(DatastoreError, match="not found"):
            datastore.get_file("missing.bin", tmp_path / "dl" / "missing.bin")
        assert list((tmp_path / "dl").iterdir()) == []

    def test_datastore_get_file_with_wrong_sha_leaves_no_file(
        self, datastore: Datastore, tmp_path: Path
    ) -> None:
        datastore.put_bytes("f.bin", b"payload")
        with pytest.raises(IntegrityError):
            datastore.get_file("f.bin", tmp_path / "dl" / "f.bin", expected_sha256="0" * 64)
        assert list((tmp_path / "dl").iterdir()) == []

    # -- write rules ------------------------------------------------------------------------------
    def test_datastore_put_if_absent_creates_once(self, datastore: Datastore) -> None:
        assert datastore.put_if_absent("claim", b"first") is True
        assert datastore.put_if_absent("claim", b"second") is False
        assert datastore.read_bytes("claim") == b"first"

    def test_datastore_put_if_absent_has_one_winner_when_concurrent(self, datastore: Datastore) -> None:
        if not datastore.atomic_create:
            pytest.skip(f"{type(datastore).__name__} documents a non-atomic put_if_absent")
        results: dict[int, bool] = {}
        barrier = threading.Barrier(8)

        def claim(i: int) -> None:
            barrier.wait()
            results[i] = datastore.put_if_absent("race", f"writer-{i}".encode())

        threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [i for i, won in results.items() if won]
        assert len(winners) == 1
        assert datastore.read_bytes("race") == f"writer-{winners[0]}".encode()

    def test_datastore_refuses_overwrite_with_different_content(
        self, datastore: Datastore, tmp_path: Path
    ) -> None:
        datastore.put_bytes("export/file", b"one")
        datastore.put_bytes("export/file", b"one")  # same content: no-op
        with pytest.raises(DatastoreError, match="append-only"):
            datastore.put_bytes("export/file", b"two")
        local = tmp_path / "f"
        local.write_bytes(b"three")
        with pytest.raises(DatastoreError, match="append-only"):
            datastore.put_file(local, "export/file")
        assert datastore.read_bytes("export/file") == b"one"

    def test_datastore_put_file_same_content_is_noop(self, datastore: Datastore, tmp_path: Path) -> None:
        local = tmp_path / "f"
        local.write_bytes(BINARY)
        assert datastore.put_file(local, "f") == datastore.put_file(local, "f")

    def test_datastore_status_rewrite_is_atomic(self, datastore: Datastore) -> None:
        layout = claim_export(datastore, WORKFLOW, T0)
        exporter = Exporter(datastore, layout)
        exporter.write_status({"n": -1})
        seen: list[int] = []
        errors: list[BaseException] = []
        done = threading.Event()

        def read() -> None:
            while not done.is_set():
                try:
                    seen.append(json.loads(datastore.read_bytes(layout.status))["n"])
                except BaseException as exc:  # a torn file shows up as a JSON error
                    errors.append(exc)
                    return

        reader = threading.Thread(target=read)
        reader.start()
        try:
            for n in range(40):
                exporter.write_status({"n": n, "padding": "x" * 50_000})
        finally:
            done.set()
            reader.join()
        assert errors == []
        assert seen == sorted(seen)
        status = layout.read_status()
        assert status is not None and status["n"] == 39

    # -- no secrets -------------------------------------------------------------------------------
    def test_datastore_url_for_has_no_secrets(self, datastore: Datastore, secrets: list[str]) -> None:
        url = datastore.url_for("some/file.bin")
        assert url.startswith(f"{datastore.scheme}://")
        assert url.endswith("some/file.bin")
        assert "?" not in url and "@" not in url
        assert not [s for s in secrets if s in url]

    def test_datastore_errors_have_no_secrets(self, datastore: Datastore, secrets: list[str]) -> None:
        with pytest.raises(DatastoreError) as info:
            datastore.read_bytes("no/such/file")
        texts = []
        exc: BaseException | None = info.value
        while exc is not None:
            texts.append(f"{exc} {exc.args!r}")
            exc = exc.__cause__
        assert not [s for s in secrets if any(s in t for t in texts)]

    # -- exports ----------------------------------------------------------------------------------
    def test_exporter_skips_unchanged_files(self, datastore: Datastore, src: Path) -> None:
        layout, exporter = export_tree(datastore, src)
        again = exporter.export_tree(src / "cache", "cache")
        assert (len(again.copied), again.skipped) == (0, 3)
        (src / "cache" / "runs" / "new.json").write_bytes(b"{}")
        more = exporter.export_tree(src / "cache", "cache")
        assert [e.path for e in more.copied] == ["cache/runs/new.json"]
        restarted = Exporter(datastore, layout).export_tree(src / "cache", "cache")
        assert (len(restarted.copied), restarted.skipped) == (0, 4)

    def test_exporter_refuses_changed_file(self, datastore: Datastore, src: Path) -> None:
        _, exporter = export_tree(datastore, src)
        (src / "output" / "footprints.json").write_bytes(b"[]\n")  # same size, new content
        with pytest.raises(DatastoreError, match="append-only"):
            exporter.export_tree(src / "output", "output")

    def test_exporter_logs_round_trip(self, datastore: Datastore, tmp_path: Path) -> None:
        layout = claim_export(datastore, WORKFLOW, T0)
        exporter = Exporter(datastore, layout)
        exporter.append_log("started\n")
        exporter.append_log("pass 1 done\n")
        log = tmp_path / "engine.log"
        log.write_text("line 1\n")
        exporter.export_log(log)
        with log.open("a") as f:
            f.write("line 2\n")
        assert Exporter(datastore, layout).export_log(log) == len("line 2\n")
        assert read_log(datastore, layout, "worker") == "started\npass 1 done\n"
        assert read_log(datastore, layout, "engine") == "line 1\nline 2\n"

    def test_manifest_verify_detects_tampering(self, datastore: Datastore, src: Path) -> None:
        layout, exporter = export_tree(datastore, src)
        exporter.finalize({"status": "succeeded"})
        assert verify(datastore, layout) == []
        tamper(datastore, layout.path("output/footprints.json"), b"{ }\n\n")
        tamper(datastore, layout.path("output/extra.txt"), b"sneaked in")
        problems = {(p.path, p.kind) for p in verify(datastore, layout)}
        assert problems == {("output/footprints.json", "size"), ("output/extra.txt", "unexpected")}
        tamper(datastore, layout.path("output/footprints.json"), b"[]\n")  # same size
        assert ("output/footprints.json", "sha256") in {(p.path, p.kind) for p in verify(datastore, layout)}

    def test_manifest_verify_checks_local_copy(self, datastore: Datastore, src: Path, tmp_path: Path) -> None:
        layout, exporter = export_tree(datastore, src)
        exporter.finalize({"status": "succeeded"})
        fetched = tmp_path / "fetched"
        fetch(datastore, layout, "output", fetched)
        assert verify(datastore, layout, fetched, "output") == []
        (fetched / "output" / "best" / "model.onnx").write_bytes(b"corrupt")
        assert [(p.path, p.kind) for p in verify(datastore, layout, fetched, "output")] == [
            ("output/best/model.onnx", "size")
        ]

    def test_fetch_downloads_and_verifies(self, datastore: Datastore, src: Path, tmp_path: Path) -> None:
        layout, exporter = export_tree(datastore, src)
        exporter.finalize({"status": "succeeded"})
        paths = fetch(datastore, layout, "cache", tmp_path / "out")
        assert len(paths) == 3
        for path in paths:
            rel = path.relative_to(tmp_path / "out")
            assert path.read_bytes() == (src / rel).read_bytes()

    def test_fetch_refuses_tampered_file(self, datastore: Datastore, src: Path, tmp_path: Path) -> None:
        layout, exporter = export_tree(datastore, src)
        exporter.finalize({"status": "succeeded"})
        tamper(datastore, layout.path("output/footprints.json"), b"{!}\n")
        with pytest.raises(IntegrityError, match=r"footprints\.json"):
            fetch(datastore, layout, "output", tmp_path / "out")
        leftovers = [p.name for p in (tmp_path / "out").rglob("*") if p.is_file()]
        assert "footprints.json" not in leftovers
        assert not [n for n in leftovers if "olivine-tmp" in n]

    def test_fetch_uses_index_when_not_finalized(
        self, datastore: Datastore, src: Path, tmp_path: Path
    ) -> None:
        layout, _ = export_tree(datastore, src)
        paths = fetch(datastore, layout, "output", tmp_path / "out")
        assert sorted(p.name for p in paths) == ["footprints.json", "model.onnx"]

    def test_finalize_seals_the_export(self, datastore: Datastore, src: Path) -> None:
        layout, exporter = export_tree(datastore, src)
        manifest = exporter.finalize({"status": "succeeded", "metrics": {"latency_ms": 9.5}})
        assert manifest["totals"]["files"] == 5
        assert json.loads(datastore.read_bytes(layout.manifest))["files"] == manifest["files"]
        with pytest.raises(DatastoreError, match="finalized"):
            exporter.export_tree(src / "cache", "cache")

    # -- layout and assets ------------------------------------------------------------------------
    def test_list_exports_is_sorted_by_time(self, datastore: Datastore) -> None:
        for second in (30, 0, 15):
            claim_export(datastore, WORKFLOW, T0 + timedelta(seconds=second))
        claim_export(datastore, "other-wf", T0 + timedelta(seconds=45))
        datastore.put_bytes("not-a-timestamp/wf-conf/file", b"x")
        exports = list_exports(datastore, WORKFLOW)
        assert [e.timestamp - T0 for e in exports] == [timedelta(seconds=s) for s in (0, 15, 30)]
        latest = latest_export(datastore, WORKFLOW)
        assert latest is not None and latest.folder == "2024-05-06-07-08-39"
        assert latest_export(datastore, "never-ran") is None

    def test_export_index_reads_back_across_checkpoints(self, datastore: Datastore, tmp_path: Path) -> None:
        layout = claim_export(datastore, WORKFLOW, T0)
        exporter = Exporter(datastore, layout)
        for i in range(2 * CHECKPOINT_EVERY + 3):  # one segment per call: crosses two checkpoints
            (tmp_path / f"f{i:03d}").write_bytes(f"file {i}".encode())
            exporter.export_file(tmp_path / f"f{i:03d}", f"cache/f{i:03d}")
        names = datastore.ls(layout.index)
        assert len(names) == 2 * CHECKPOINT_EVERY + 3
        assert sum(n.endswith(".full.json") for n in names) == 2
        index = read_index(datastore, layout)
        assert sorted(index) == [f"cache/f{i:03d}" for i in range(2 * CHECKPOINT_EVERY + 3)]
        restarted = Exporter(datastore, layout)
        (tmp_path / "late").write_bytes(b"late")
        restarted.export_file(tmp_path / "late", "cache/late")
        assert "cache/late" in read_index(datastore, layout) and len(read_index(datastore, layout)) == 36

    def test_list_exports_finds_exports_made_before_markers(self, datastore: Datastore) -> None:
        # A datastore written before markers existed: found by scanning, until a claim backfills.
        datastore.put_bytes("2024-05-06-07-08-30/old-wf/cache/x", b"x")
        datastore.put_bytes("2024-05-06-07-08-31/other-old/cache/x", b"x")
        assert [e.folder for e in list_exports(datastore, "old-wf")] == ["2024-05-06-07-08-30"]
        assert not datastore.exists(MARKERS_FLAG)  # listing only reads
        claim_export(datastore, WORKFLOW, T0)  # the first claim backfills every export's marker
        assert datastore.exists(MARKERS_FLAG)
        assert datastore.ls(".olivine/exports/old-wf") == ["2024-05-06-07-08-30.json"]
        assert [e.folder for e in list_exports(datastore, "old-wf")] == ["2024-05-06-07-08-30"]
        assert [e.folder for e in list_exports(datastore, "other-old")] == ["2024-05-06-07-08-31"]
        assert [e.folder for e in list_exports(datastore, WORKFLOW)] == ["2024-05-06-07-08-09"]
        assert list_exports(datastore, "never-ran") == []

    def test_claim_export_same_second_gets_next_second(self, datastore: Datastore) -> None:
        first = claim_export(datastore, WORKFLOW, T0, claim_id="job-1")
        second = claim_export(datastore, WORKFLOW, T0, claim_id="job-2")
        retry = claim_export(datastore, WORKFLOW, T0, claim_id="job-1")
        assert (first.folder, second.folder) == ("2024-05-06-07-08-09", "2024-05-06-07-08-10")
        assert retry == first

    def test_asset_index_round_trip(self, datastore: Datastore) -> None:
        register(datastore, WORKFLOW, T0, {"status": "failed"})
        register(datastore, WORKFLOW, T0 + timedelta(hours=1), {"status": "succeeded"})
        register(datastore, WORKFLOW, T0, {"status": "failed"})  # same again: no-op
        assert [(a.name, a.versions) for a in list_assets(datastore)] == [
            (WORKFLOW, ("2024-05-06-07-08-09", "2024-05-06-08-08-09"))
        ]
        latest = show(datastore, WORKFLOW)
        assert latest["summary"] == {"status": "succeeded"}
        assert latest["url"] == datastore.url_for(f"2024-05-06-08-08-09/{WORKFLOW}")
        assert show(datastore, WORKFLOW, "2024-05-06-07-08-09")["summary"] == {"status": "failed"}
        with pytest.raises(DatastoreError, match="append-only"):
            register(datastore, WORKFLOW, T0, {"status": "succeeded"})
        with pytest.raises(JobNotFoundError):
            show(datastore, "unknown-wf")
        assert catalog(datastore) == {
            WORKFLOW: [("2024-05-06-07-08-09", "failed"), ("2024-05-06-08-08-09", "succeeded")]
        }
