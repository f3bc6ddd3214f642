"""Paths no file can have are one config error naming the key (they were internal errors)."""

from __future__ import annotations

import json
import re
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


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("cfg.json", '{"passes": {"q": {"type": "A"}, "q": {"type": "B"}}}', "the key 'q' is given twice"),
        (
            "cfg.yaml",
            "passes:\n  q: {type: A}\n  q: {type: B}\n",
            "the key 'q' is given twice in one mapping (line 3)",
        ),
    ],
)
def test_a_key_given_twice_is_refused(tmp_path: Path, name: str, text: str, where: str) -> None:
    """JSON and YAML readers keep the last of two equal keys: one setting was silently lost."""
    from olivine.config.loader import read_config_file

    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=re.escape(where)):
        read_config_file(tmp_path / name)


def test_a_yaml_merge_key_may_be_overridden(tmp_path: Path) -> None:
    from olivine.config.loader import read_config_file

    (tmp_path / "cfg.yaml").write_text("base: &b {k: 1, j: 3}\nother:\n  <<: *b\n  k: 2\n")
    assert read_config_file(tmp_path / "cfg.yaml")["other"] == {"k": 2, "j": 3}
