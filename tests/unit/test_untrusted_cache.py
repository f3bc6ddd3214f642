"""A cache read back from a shared datastore is untrusted: confined to its root, corrupt entries dropped.

Seeding and the cache's own run records are checked with real exports on a ``file://`` datastore; the
property test mutates manifests (paths, sizes, hashes) and checks that seeding never raises, never
writes outside the cache folder, and never seeds a file that does not match the export.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from olivine.datastores import Datastore, Exporter, claim_export, list_exports
from olivine.datastores.files import json_bytes
from olivine.datastores.seeding import latest_seed, seed_cache
from olivine.engine.cache import WorkflowCache
from olivine.jobs.progress import export_cache
from olivine.model.handle import ModelHandle

T0 = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
KEY_A, KEY_B = "a" * 64, "b" * 64


def _commit(cache: WorkflowCache, key: str, data: bytes) -> None:
    staging = cache.new_run_dir()
    (staging / "model" / "model.onnx").write_bytes(data)
    cache.commit_run(key, staging, ModelHandle("onnx", {"model_path": str(staging / "model")}), {})


def _export(datastore: Datastore, root: Path, when: datetime = T0) -> None:
    cache = WorkflowCache(root, "wf")
    _commit(cache, KEY_A, b"model-a" * 100)
    _commit(cache, KEY_B, b"model-b" * 100)
    cache.store_evaluation("e" * 64, {"metrics": {"size": 1}})
    exporter = Exporter(datastore, claim_export(datastore, "wf", when))
    export_cache(exporter, cache.root, "cache")
    exporter.finalize({"status": "succeeded"}, register_asset=False)


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_load_run_refuses_a_model_path_outside_its_run_folder(tmp_path: Path) -> None:
    secret = tmp_path / "home" / ".ssh"
    secret.mkdir(parents=True)
    (secret / "id_ed25519").write_text("PRIVATE KEY")
    cache = WorkflowCache(tmp_path / "cache", "wf")
    _commit(cache, KEY_A, b"x")
    record_path = cache.runs / KEY_A / "run.json"
    for planted in (str(secret), "../../../../home/.ssh", "model/../../.."):
        record = json.loads(record_path.read_text()) if record_path.exists() else None
        if record is None:
            _commit(cache, KEY_A, b"x")
            record = json.loads(record_path.read_text())
        record["model"]["config"]["model_path"] = planted
        record_path.write_text(json.dumps(record))
        assert cache.load_run(KEY_A) is None, planted
        assert not (cache.runs / KEY_A).exists()  # moved aside, so the run is redone
    assert (secret / "id_ed25519").read_text() == "PRIVATE KEY"


def test_load_run_treats_a_vanished_model_or_garbage_record_as_a_miss_and_can_recommit(
    tmp_path: Path,
) -> None:
    cache = WorkflowCache(tmp_path / "cache", "wf")
    _commit(cache, KEY_A, b"x")
    for path in (cache.runs / KEY_A / "model").iterdir():
        path.unlink()
    (cache.runs / KEY_A / "model").rmdir()
    assert cache.load_run(KEY_A) is None
    _commit(cache, KEY_B, b"y")
    (cache.runs / KEY_B / "run.json").write_bytes(b"\xff\x00 not json")
    assert cache.load_run(KEY_B) is None
    _commit(cache, KEY_B, b"y")  # the corrupt entry no longer blocks the commit
    assert cache.load_run(KEY_B) is not None


def test_seed_drops_a_corrupt_unit_and_keeps_the_rest(tmp_path: Path) -> None:
    datastore = Datastore.from_url((tmp_path / "store").as_uri())
    _export(datastore, tmp_path / "first")
    source = list_exports(datastore, "wf")[-1]
    victim = Path(datastore.fs_path(source.path(f"cache/runs/{KEY_A}/model/model.onnx")))
    data = bytearray(victim.read_bytes())
    data[10] ^= 0xFF
    os.chmod(victim, 0o600)
    victim.write_bytes(bytes(data))
    seeded = tmp_path / "job" / "cache" / "wf"
    report = seed_cache(source, seeded, tmp_path / "job" / "seed")
    assert set(report.dropped_units) == {f"runs/{KEY_A}"}
    assert not (seeded / "runs" / KEY_A).exists()
    assert (seeded / "runs" / KEY_B / "model" / "model.onnx").read_bytes() == b"model-b" * 100
    assert WorkflowCache(seeded.parent, "wf").load_run(KEY_B) is not None


def test_seed_from_an_unreadable_manifest_seeds_nothing_and_does_not_raise(tmp_path: Path) -> None:
    datastore = Datastore.from_url((tmp_path / "store").as_uri())
    _export(datastore, tmp_path / "first")
    source = list_exports(datastore, "wf")[-1]
    manifest = Path(datastore.fs_path(source.manifest))
    os.chmod(manifest, 0o600)
    manifest.write_bytes(b"{ truncated")
    report = seed_cache(source, tmp_path / "job" / "cache" / "wf", tmp_path / "job" / "seed")
    assert report.files == 0 and report.unreadable
    assert latest_seed(datastore, "wf") is None


def test_latest_seed_ignores_an_export_dated_in_the_future(tmp_path: Path) -> None:
    datastore = Datastore.from_url((tmp_path / "store").as_uri())
    now = datetime.now(timezone.utc)
    _export(datastore, tmp_path / "past", now - timedelta(hours=1))
    _export(datastore, tmp_path / "future", now + timedelta(days=3650))
    chosen = latest_seed(datastore, "wf")
    assert chosen is not None and chosen.timestamp < now


_PATHS = st.one_of(
    st.sampled_from(
        [
            "../../escape",
            "/etc/passwd",
            "cache/../../../outside",
            "cache/runs/../../../../x",
            "cache/runs",
            "cache//runs/k/model.onnx",
            "output/model.onnx",
            "cache/runs/k\\..\\..\\x",
            "cache/runs/k/\x00",
            "cache/evaluations/e.json",
            "cache/failures/f.json",
            "cache/zzz/unknown",
        ]
    ),
    st.text(min_size=1, max_size=30).map(lambda t: f"cache/{t}"),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    extra=st.lists(
        st.tuples(_PATHS, st.integers(-5, 10**12), st.one_of(st.just("0" * 64), st.text(max_size=70))),
        max_size=6,
    ),
    drop_valid=st.booleans(),
)
def test_mutated_manifest_never_escapes_the_cache_nor_seeds_a_bad_file(
    tmp_path: Path, extra: list[tuple[str, int, str]], drop_valid: bool
) -> None:
    base = tmp_path / f"case-{os.urandom(4).hex()}"
    datastore = Datastore.from_url((base / "store").as_uri())
    _export(datastore, base / "first")
    source = list_exports(datastore, "wf")[-1]
    manifest_path = Path(datastore.fs_path(source.manifest))
    manifest = json.loads(manifest_path.read_text())
    files = [f for f in manifest["files"] if not (drop_valid and KEY_A in f["path"])]
    manifest["files"] = files + [{"path": p, "size": s, "sha256": h} for p, s, h in extra]
    os.chmod(manifest_path, 0o600)
    manifest_path.write_bytes(json_bytes(manifest))
    before = _files(base)
    seeded = base / "job" / "cache" / "wf"
    seed_cache(source, seeded, base / "job" / "seed")
    created = _files(base) - before
    assert all(p.startswith("job/cache/wf/") for p in created), created
    stored = {f["path"]: f["sha256"] for f in files}
    for rel in created:
        inner = rel.removeprefix("job/cache/wf/")
        if inner.startswith("."):
            continue  # the digests sidecar
        digest = hashlib.sha256((base / rel).read_bytes()).hexdigest()
        assert stored.get(f"cache/{inner}") == digest, rel


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_PATH_VALUES = st.one_of(
    st.sampled_from(["/", "/etc", "..", "../..", "model/../../..", "~", "model", "model/model.onnx", ""]),
    st.text(max_size=20),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    model_type=st.one_of(st.sampled_from(["ONNXModel", "PyTorchModel", "HfModel"]), st.text(max_size=10)),
    paths=st.dictionaries(
        st.sampled_from(["model_path", "model_script", "script_dir", "adapter_path"]), _PATH_VALUES
    ),
    junk=st.dictionaries(st.text(max_size=8), _JSON, max_size=3),
    replace_whole=st.one_of(st.none(), _JSON),
)
def test_mutated_run_record_is_a_miss_or_confined_never_an_error(
    tmp_path: Path, model_type: str, paths: dict[str, str], junk: dict[str, object], replace_whole: object
) -> None:
    cache = WorkflowCache(tmp_path / f"c-{os.urandom(4).hex()}", "wf")
    _commit(cache, KEY_A, b"model")
    record_path = cache.runs / KEY_A / "run.json"
    record = json.loads(record_path.read_text())
    record["model"] = {"type": model_type, "config": {**record["model"]["config"], **paths, **junk}}
    record_path.write_text(json.dumps(record if replace_whole is None else replace_whole))
    loaded = cache.load_run(KEY_A)
    if loaded is not None:
        base = (cache.runs / KEY_A).resolve()
        for key in ("model_path", "model_script", "script_dir", "adapter_path"):
            value = loaded.model.config.get(key)
            if value:
                assert Path(str(value)).resolve().is_relative_to(base), (key, value)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(segment=st.one_of(st.binary(max_size=40), _JSON.map(lambda v: json.dumps(v).encode())))
def test_mutated_index_segment_never_breaks_seeding_or_escapes(tmp_path: Path, segment: bytes) -> None:
    base = tmp_path / f"case-{os.urandom(4).hex()}"
    datastore = Datastore.from_url((base / "store").as_uri())
    cache = WorkflowCache(base / "first", "wf")
    _commit(cache, KEY_A, b"model-a")
    layout = claim_export(datastore, "wf", T0)
    exporter = Exporter(datastore, layout)
    export_cache(exporter, cache.root, "cache")  # no manifest: readers fall back to the index
    datastore.put_bytes(f"{layout.index}/999999.json", segment)
    before = _files(base)
    seeded = base / "job" / "cache" / "wf"
    seed_cache(layout, seeded, base / "job" / "seed")
    assert all(p.startswith("job/cache/wf/") for p in _files(base) - before)
