"""Quantization pre-processing shared between runs from one input model: the same quantized graph as a
pass that pre-processes on its own, and one pre-processing for a whole search."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import onnx
import pytest

# The quantization tests' tiny MLP, calibration data and context (pytest fixtures, re-exported).
from test_passes_quant import ctx as ctx
from test_passes_quant import mlp as mlp
from test_passes_quant import mlp_dir as mlp_dir
from test_passes_quant import run_pass
from test_search import run_config, search_config

from olivine.engine.shared import SharedStore
from olivine.model.handle import ModelHandle
from olivine.passes import PassContext

pytestmark = pytest.mark.integration


def graph_bytes(model: ModelHandle) -> bytes:
    return bytes(onnx.load(str(model.onnx_path)).SerializeToString())


@pytest.fixture()
def preprocess_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every call of onnxruntime's quant_pre_process (the real one runs)."""
    import onnxruntime.quantization.preprocess as ort_preprocess

    calls: list[str] = []
    real = ort_preprocess.quant_pre_process

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(str(kwargs.get("input_model", args[0] if args else "")))
        return real(*args, **kwargs)

    monkeypatch.setattr(ort_preprocess, "quant_pre_process", counted)
    return calls


@pytest.mark.parametrize(
    ("pass_type", "params"),
    [
        ("OnnxDynamicQuantization", {"per_channel": True}),
        ("OnnxStaticQuantization", {"data_config": "calib", "quant_format": "QDQ"}),
        ("OnnxStaticQuantization", {"data_config": "calib", "quant_format": "QOperator"}),
    ],
)
def test_shared_preprocessing_gives_the_graph_a_pass_alone_gives(
    mlp: ModelHandle,
    ctx: PassContext,
    tmp_path: Path,
    preprocess_calls: list[str],
    pass_type: str,
    params: dict[str, Any],
) -> None:
    alone = run_pass(pass_type, mlp, tmp_path / "alone", ctx, **params)
    shared_ctx = dataclasses.replace(ctx, shared=SharedStore(tmp_path / "cache").for_model("mlp", {}))
    first = run_pass(pass_type, mlp, tmp_path / "first", shared_ctx, **params)
    second = run_pass(pass_type, mlp, tmp_path / "second", shared_ctx, **params)
    assert len(preprocess_calls) == 2  # alone, then once for both shared runs
    assert graph_bytes(first) == graph_bytes(alone) == graph_bytes(second)
    # The shared graph is untouched by the quantizer (it writes a shape-inferred file beside its input).
    shared = [p for p in (tmp_path / "cache" / "shared").iterdir() if not p.name.startswith(".")]
    assert len(shared) == 1
    files = sorted(p.name for p in shared[0].iterdir())
    assert "preprocessed.onnx" in files and "shared.json" in files
    assert not [name for name in files if "inferred" in name]


def test_search_preprocesses_the_quantization_input_once(tmp_path: Path, preprocess_calls: list[str]) -> None:
    passes = {
        "quant": [
            {
                "type": "OnnxDynamicQuantization",
                "per_channel": "SEARCHABLE_VALUES",
                "reduce_range": [True, False],
            },
            {"type": "OnnxDynamicQuantization", "precision": "uint8", "quant_preprocess": False},
        ]
    }
    strategy = {"sampler": "sequential", "include_pass_params": False}
    footprint = run_config(tmp_path, search_config(tmp_path, passes, strategy))
    assert [c["status"] for c in footprint["candidates"]] == ["evaluated"] * 5
    assert len({c["model_id"] for c in footprint["candidates"]}) == 5
    assert len(preprocess_calls) == 1
    again = run_config(tmp_path, search_config(tmp_path, passes, strategy, workflow_id="search"))
    assert len(preprocess_calls) == 1 and again["best"] == footprint["best"]


@pytest.fixture(scope="module")
def bert_fused(tmp_path_factory: pytest.TempPathFactory) -> ModelHandle:
    """The tiny BERT exported and fused (Attention, EmbedLayerNormalization: dynamic quantization then
    writes QAttention and QEmbedLayerNormalization too)."""
    from onnx_fixtures import shared_bert_onnx

    out = tmp_path_factory.mktemp("bert-fused")
    params = {"model_type": "bert", "num_heads": 2, "hidden_size": 32}
    return run_pass(
        "OrtTransformersOptimization", shared_bert_onnx(tmp_path_factory), out, PassContext(), **params
    )


@pytest.mark.parametrize("model_name", ["mlp", "bert_fused"])
def test_dynamic_quantization_of_the_preprocessed_graph_is_quantize_dynamics_output(
    model_name: str,
    request: pytest.FixtureRequest,
    ctx: PassContext,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pass quantizes the pre-processed graph without quantize_dynamic's file round trip and with
    per-channel weights computed at once (quant_run._quantize_inferred): the output is byte for byte
    what onnxruntime's quantize_dynamic writes from the same pre-processed graph, for every option the
    pass sets."""
    import shutil

    import onnxruntime.quantization as ort_quantization
    from onnxruntime.quantization import QuantType

    model: ModelHandle = request.getfixturevalue(model_name)
    shared_ctx = dataclasses.replace(ctx, shared=SharedStore(tmp_path / "cache").for_model("m", {}))
    real = ort_quantization.quantize_dynamic
    calls: list[Any] = []
    monkeypatch.setattr(
        ort_quantization, "quantize_dynamic", lambda *a, **k: calls.append(a) or real(*a, **k)
    )
    configs = [
        {
            "precision": precision,
            "per_channel": per_channel,
            "reduce_range": reduce_range,
            "op_types_to_quantize": ops,
        }
        for precision in ("int8", "uint8")
        for per_channel in (True, False)
        for reduce_range in (True, False)
        for ops in (None, ["MatMul"])
    ]
    written: set[str] = set()
    for n, params in enumerate(configs):
        out = run_pass("OnnxDynamicQuantization", model, tmp_path / f"q{n}", shared_ctx, **params)
        assert not calls  # the pass's own path
        shared = next(p for p in (tmp_path / "cache" / "shared").iterdir() if not p.name.startswith("."))
        copy = tmp_path / f"ref{n}"
        shutil.copytree(shared, copy)
        real(
            model_input=str(copy / "preprocessed.onnx"),
            model_output=str(copy / "quantized.onnx"),
            op_types_to_quantize=params["op_types_to_quantize"],
            per_channel=params["per_channel"],
            reduce_range=params["reduce_range"],
            weight_type=QuantType.QInt8 if params["precision"] == "int8" else QuantType.QUInt8,
        )
        assert out.onnx_path.read_bytes() == (copy / "quantized.onnx").read_bytes(), params
        written |= {node.op_type for node in onnx.load(str(out.onnx_path)).graph.node}
    assert "MatMulInteger" in written
    if model_name == "bert_fused":
        assert {"QAttention", "QEmbedLayerNormalization"} <= written
