"""The tiny models as ONNX, built once per test session and shared by the pass test modules.

Exporting the tiny BERT takes seconds; the modules that only read the exported model (they write their
outputs elsewhere) share one export. Keyed by the session's base temp folder.
"""

from __future__ import annotations

import functools
from pathlib import Path

import onnx
import pytest

from olivine.model.handle import ModelHandle
from tiny_models import handle, write_onnx_mlp, write_tiny_bert


@functools.cache
def _bert_onnx(base: Path) -> ModelHandle:
    from olivine.passes import PASSES, PassContext

    bert = handle(write_tiny_bert(base / "shared-bert"))
    cls = PASSES.get("OnnxConversion")
    out = base / "shared-bert-onnx"
    out.mkdir()
    return cls().run(bert, cls.config_class.model_validate({"target_opset": 17}), out, PassContext())


@functools.cache
def _onnx_mlp(base: Path) -> ModelHandle:
    return handle(write_onnx_mlp(base / "shared-mlp"))


def shared_bert_onnx(factory: pytest.TempPathFactory) -> ModelHandle:
    """The 2-layer BERT exported with OnnxConversion (opset 17); do not write into its folder."""
    return _bert_onnx(factory.getbasetemp())


def shared_onnx_mlp(factory: pytest.TempPathFactory) -> ModelHandle:
    """The ONNX MLP of tiny_models.write_onnx_mlp; do not write into its folder."""
    return _onnx_mlp(factory.getbasetemp())


def save_proto(folder: Path, proto: onnx.ModelProto) -> ModelHandle:
    """``proto`` saved as ``folder/model.onnx``, as an ONNX model handle."""
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save_model(proto, str(folder / "model.onnx"))
    return ModelHandle(kind="onnx", config={"model_path": str(folder), "onnx_file_name": "model.onnx"})
