"""An output folder's claims are checked before success is reported: a vanished or altered best model
is a failure, never an empty SUCCEEDED."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from olivine.engine.cache import WorkflowCache
from olivine.engine.claims import output_problems
from olivine.engine.output import copy_model
from olivine.errors import CacheError
from olivine.model.handle import ModelHandle


def _output(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    (out / "model").mkdir(parents=True)
    (out / "model" / "model.onnx").write_bytes(b"onnx bytes")
    config = ModelHandle("onnx", {"model_path": str(out / "model"), "onnx_file_name": "model.onnx"})
    (out / "model_config.json").write_text(json.dumps(config.to_json(relative_to=out)))
    (out / "footprint.json").write_text(json.dumps({"best_model_id": "abc"}))
    from olivine.digests import record_folder

    record_folder(out)
    return out


def test_output_problems_is_empty_for_a_complete_output(tmp_path: Path) -> None:
    assert output_problems(_output(tmp_path)) == []


def test_output_problems_reports_an_emptied_model_folder(tmp_path: Path) -> None:
    out = _output(tmp_path)
    (out / "model" / "model.onnx").unlink()
    problems = output_problems(out)
    assert any("holds no files" in p for p in problems) and any("missing" in p for p in problems)


def test_output_problems_reports_altered_files_and_a_missing_config(tmp_path: Path) -> None:
    out = _output(tmp_path)
    (out / "model" / "model.onnx").write_bytes(b"other bytes")
    assert any("differs" in p for p in output_problems(out))
    (out / "model_config.json").unlink()
    assert any("model_config.json is missing" in p for p in output_problems(out))


def test_output_problems_refuses_a_model_path_outside_the_output(tmp_path: Path) -> None:
    out = _output(tmp_path)
    (out / "model_config.json").write_text(
        json.dumps({"type": "ONNXModel", "config": {"model_path": "/etc"}})
    )
    assert any("outside" in p for p in output_problems(out))


def test_copy_model_refuses_a_best_model_whose_run_folder_vanished(tmp_path: Path) -> None:
    cache = WorkflowCache(tmp_path / "cache", "wf")
    staging = cache.new_run_dir()
    (staging / "model" / "model.onnx").write_bytes(b"m")
    run = cache.commit_run("k" * 64, staging, ModelHandle("onnx", {"model_path": str(staging / "model")}), {})
    shutil.rmtree(cache.root)  # a concurrent clean_cache run
    with pytest.raises(CacheError, match="gone"):
        copy_model(run.model, tmp_path / "copy")
