"""Cache keys are full-length content hashes; writes are atomic; failures are never cache hits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from olivine.engine.cache import WorkflowCache, write_json_atomic
from olivine.engine.identity import input_model_id
from olivine.engine.keys import canonical_json, hash_json, run_key
from olivine.model.handle import ModelHandle


def _key(**changes: Any) -> str:
    base: dict[str, Any] = {
        "input_model_id": "m" * 64,
        "pass_type": "OnnxDynamicQuantization",
        "pass_version": "1",
        "pass_config": {"per_channel": False, "weight_type": "QInt8"},
        "accelerator": {"device": "cpu", "execution_providers": ["CPUExecutionProvider"]},
        "versions": {"onnxruntime": "1.32.0"},
    }
    base.update(changes)
    return run_key(**base)


def test_run_key_is_full_length_sha256() -> None:
    key = _key()
    assert len(key) == 64 and int(key, 16) >= 0


def test_run_key_ignores_dict_order() -> None:
    assert _key(pass_config={"weight_type": "QInt8", "per_channel": False}) == _key()


def test_run_key_changes_with_each_ingredient() -> None:
    base = _key()
    variants = [
        _key(input_model_id="n" * 64),
        _key(pass_type="OnnxConversion"),
        _key(pass_version="2"),
        _key(pass_config={"per_channel": True, "weight_type": "QInt8"}),
        _key(accelerator={"device": "gpu", "execution_providers": ["CUDAExecutionProvider"]}),
        _key(versions={"onnxruntime": "1.33.0"}),
    ]
    assert len({base, *variants}) == len(variants) + 1


def test_canonical_json_is_compact_and_sorted() -> None:
    assert canonical_json({"b": 1, "a": [1, 2]}) == '{"a":[1,2],"b":1}'
    assert hash_json({"b": 1, "a": 2}) == hash_json({"a": 2, "b": 1})


def test_input_model_id_changes_when_weights_change(tmp_path: Path) -> None:
    weights = tmp_path / "model.onnx"
    weights.write_bytes(b"one")
    handle = ModelHandle("onnx", {"model_path": str(weights)})
    first = input_model_id(handle)
    weights.write_bytes(b"two")
    assert input_model_id(handle) != first
    weights.write_bytes(b"one")
    assert input_model_id(handle) == first


def test_input_model_id_does_not_depend_on_location(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.onnx").write_bytes(b"same")
    ids = {
        input_model_id(ModelHandle("onnx", {"model_path": str(tmp_path / n / "model.onnx")})) for n in "ab"
    }
    assert len(ids) == 1


def test_cache_commit_makes_run_visible_with_relative_model_paths(tmp_path: Path) -> None:
    cache = WorkflowCache(tmp_path, "wf")
    staging = cache.new_run_dir()
    (staging / "model" / "model.onnx").write_bytes(b"x")
    out = ModelHandle("onnx", {"model_path": str(staging / "model"), "onnx_file_name": "model.onnx"})
    assert cache.load_run("k" * 64) is None
    run = cache.commit_run("k" * 64, staging, out, {"pass_name": "p"})
    assert not staging.exists()
    record = json.loads((run.run_dir / "run.json").read_text())
    assert record["model"]["config"]["model_path"] == "model"
    loaded = cache.load_run("k" * 64)
    assert loaded is not None and loaded.model.onnx_path.read_bytes() == b"x"


def test_cache_failure_record_is_not_a_hit_and_success_clears_it(tmp_path: Path) -> None:
    cache = WorkflowCache(tmp_path, "wf")
    failure = cache.record_failure("f" * 64, {"error": "boom"})
    assert failure.is_file() and cache.load_run("f" * 64) is None
    staging = cache.new_run_dir()
    cache.commit_run("f" * 64, staging, ModelHandle("onnx", {"model_path": str(staging / "model")}), {})
    assert not failure.exists()


def test_cache_relocated_folder_still_loads(tmp_path: Path) -> None:
    cache = WorkflowCache(tmp_path / "one", "wf")
    staging = cache.new_run_dir()
    (staging / "model" / "model.onnx").write_bytes(b"x")
    cache.commit_run("a" * 64, staging, ModelHandle("onnx", {"model_path": str(staging / "model")}), {})
    (tmp_path / "one").rename(tmp_path / "two")
    moved = WorkflowCache(tmp_path / "two", "wf").load_run("a" * 64)
    assert moved is not None and moved.model.model_path == str(
        tmp_path / "two/wf/runs" / ("a" * 64) / "model"
    )


def test_write_json_atomic_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    write_json_atomic(target, {"a": 1})
    write_json_atomic(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
