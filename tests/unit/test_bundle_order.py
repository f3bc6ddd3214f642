"""A bundle keeps the workflow's meaning: passes run in the order the config lists them."""

from __future__ import annotations

import json
from pathlib import Path

from olivine.engine.resolve import load_workflow
from olivine.jobs import bundle
from tiny_models import write_onnx_mlp


def test_bundle_unpack_keeps_pass_order_when_names_are_not_sorted(tmp_path: Path) -> None:
    passes = {
        "zeta_quantize": {"type": "OnnxDynamicQuantization"},
        "alpha_quantize_again": {"type": "OnnxDynamicQuantization", "per_channel": True},
    }
    cfg = {"input_model": write_onnx_mlp(tmp_path / "m"), "passes": passes}
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    workflow = load_workflow(path)
    bundle.build(workflow, tmp_path / "bundle")
    unpacked = bundle.unpack(tmp_path / "bundle", tmp_path / "unpacked")
    assert [p.name for p in unpacked.passes] == ["zeta_quantize", "alpha_quantize_again"]
