"""Symbolic links planted in the output folder are replaced, never written through."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from olivine.api import load, run_local

pytestmark = pytest.mark.integration


def test_links_planted_in_the_output_folder_are_replaced_not_followed(tmp_path: Path) -> None:
    from tiny_models import write_onnx_mlp

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    out = tmp_path / "out"
    out.mkdir()
    (out / "model").symlink_to(outside, target_is_directory=True)
    (out / ".model.tmp").symlink_to(outside, target_is_directory=True)
    (out / "run_history.txt").symlink_to(outside / "keep.txt")
    cfg = {
        "input_model": write_onnx_mlp(tmp_path / "onnx"),
        "passes": {"peephole": {"type": "OnnxPeepholeOptimizer"}},
        "output_dir": str(out),
        "cache_dir": str(tmp_path / "cache"),
    }
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    result = run_local(load(tmp_path / "cfg.json"))
    assert result.best is not None
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"]
    assert (outside / "keep.txt").read_text() == "mine"
    assert not (out / "model").is_symlink() and (out / "model" / "model.onnx").is_file()
    assert not (out / "run_history.txt").is_symlink()
    assert not (out / ".model.tmp").exists()
