"""Paths no file can have are one config error naming the key (they were internal errors)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from olivine.api import load
from olivine.errors import ConfigError


@pytest.mark.parametrize(
    ("change", "key", "message"),
    [
        ({"output_dir": "out/a\x00b"}, "output_dir", "NUL byte"),
        ({"cache_dir": "c/" + "x" * 300}, "cache_dir", "longer than 255 bytes"),
        (
            {"input_model": {"type": "ONNXModel", "model_path": "m\x00.onnx"}},
            "input_model.model_path",
            "does not exist",
        ),
        (
            {"input_model": {"type": "ONNXModel", "model_path": "y" * 300}},
            "input_model.model_path",
            "does not exist",
        ),
    ],
)
def test_impossible_paths_are_refused_by_key(
    tmp_path: Path, change: dict[str, Any], key: str, message: str
) -> None:
    (tmp_path / "m.onnx").write_bytes(b"x")
    cfg = {"input_model": {"type": "ONNXModel", "model_path": "m.onnx"}, **change}
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError) as caught:
        load(tmp_path / "cfg.json")
    assert key in str(caught.value) and message in str(caught.value)
