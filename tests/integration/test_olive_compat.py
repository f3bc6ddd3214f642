"""Olive configs that Olive accepts run unchanged: model sources, olive imports, tasks, output layout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from olivine.api import load, run_local
from olivine.errors import ConfigError
from tiny_models import write_mlp

pytestmark = pytest.mark.integration

_NAMED_LOADER_SCRIPT = """
from olive.constants import Framework
from olive.model import PyTorchModelHandler

from mlp_script import MLP, IO_CONFIG

LOADED = []


def load_by_name(model_name: str):
    assert Framework.PYTORCH == "PyTorch"
    LOADED.append(model_name)
    if model_name != "tiny/mlp-by-name":
        raise ValueError(f"unexpected name {model_name}")
    return MLP()


def get_io_config(model: PyTorchModelHandler):
    return IO_CONFIG
"""


def _write(folder: Path, cfg: dict[str, Any]) -> Path:
    path = folder / "cfg.json"
    path.write_text(json.dumps(cfg, indent=2))
    return path


def _named_model(folder: Path) -> dict[str, Any]:
    write_mlp(folder)
    (folder / "named_loader.py").write_text(_NAMED_LOADER_SCRIPT)
    return {
        "type": "PyTorchModel",
        "model_path": "tiny/mlp-by-name",
        "model_loader": "load_by_name",
        "model_script": "named_loader.py",
        "io_config": "get_io_config",
    }


def test_pytorch_model_path_name_is_passed_to_model_loader_and_olive_imports_work(tmp_path: Path) -> None:
    cfg = {
        "input_model": _named_model(tmp_path),
        "passes": {"conversion": {"type": "OnnxConversion", "target_opset": 17}},
        "output_dir": "out",
        "cache_dir": "cache",
    }
    workflow = load(_write(tmp_path, cfg))
    assert workflow.config.input_model.model_path == "tiny/mlp-by-name"
    assert [key for key, _ in workflow.local_files()] == ["input_model.model_script"]
    result = run_local(workflow, cache_dir=tmp_path / "cache", output_dir=tmp_path / "out")
    assert result.best is not None
    assert (tmp_path / "out" / "model_config.json").is_file()


def test_pytorch_model_path_name_without_loader_is_refused_at_validation(tmp_path: Path) -> None:
    cfg = {"input_model": {"type": "PyTorchModel", "model_path": "resnet50"}}
    with pytest.raises(ConfigError) as info:
        load(_write(tmp_path, cfg))
    assert info.value.path == "input_model.model_path"
    assert "model_loader" in str(info.value)
    assert str(info.value).startswith(str(tmp_path / "cfg.json"))
