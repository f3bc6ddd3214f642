"""Passes whose parameters meant something else than in Olive 0.13 (found by running both on the same
models): each test checks the artifact."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import pytest
from test_passes_graph import BERT_FEED, bert_onnx, graph, op_counts, run_pass  # noqa: F401
from test_passes_quant import ctx, initializers, mlp, mlp_dir, static  # noqa: F401

from olivine.errors import PassRunError
from olivine.model.accelerator import Accelerator
from olivine.model.handle import ModelHandle
from olivine.passes import PASSES, PassContext
from tiny_models import MLP_IN

pytestmark = pytest.mark.integration


def test_rtn_nodes_to_include_quantizes_only_those_nodes(bert_onnx: ModelHandle, tmp_path: Path) -> None:  # noqa: F811
    matmuls = [n.name for n in graph(bert_onnx).node if n.op_type == "MatMul"]
    out = run_pass(
        "OnnxBlockWiseRtnQuantization",
        bert_onnx,
        tmp_path / "q",
        block_size=16,
        nodes_to_include=[matmuls[0]],
    )
    counts = op_counts(out)
    assert counts["MatMulNBits"] == 1 and counts["MatMul"] == len(matmuls) - 1
    assert "GatherBlockQuantized" not in counts  # the embeddings' Gather is not named: it stays float
    assert {o.version for o in onnx.load(str(out.onnx_path)).opset_import if o.domain == ""} == {
        o.version for o in onnx.load(str(bert_onnx.onnx_path)).opset_import if o.domain == ""
    }
    with pytest.raises(PassRunError, match=r"nodes_to_include: \['nope'\] are not names"):
        run_pass("OnnxBlockWiseRtnQuantization", bert_onnx, tmp_path / "bad", nodes_to_include=["nope"])


def test_float16_empty_include_lists_convert_everything(mlp: ModelHandle, tmp_path: Path) -> None:  # noqa: F811
    whole = run_pass("OnnxFloatToFloat16", mlp, tmp_path / "a")
    empty = run_pass("OnnxFloatToFloat16", mlp, tmp_path / "b", op_include_list=[], node_include_list=[])
    assert op_counts(empty) == op_counts(whole)
    assert {i.data_type for i in graph(empty).initializer} == {onnx.TensorProto.FLOAT16}


def test_transformers_optimization_refuses_float16_on_the_cpu() -> None:
    cls = PASSES.get("OrtTransformersOptimization")
    config = cls.config_class.model_validate({"model_type": "bert", "float16": True})
    reason = cls.invalid_reason(config, Accelerator())
    assert reason is not None and reason.startswith("float16: true") and "CPU" in reason
    assert cls.invalid_reason(cls.config_class.model_validate({"model_type": "bert"}), Accelerator()) is None


def test_a_pass_parameter_wins_over_extra_options_with_a_warning(
    mlp: ModelHandle,  # noqa: F811
    ctx: PassContext,  # noqa: F811
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    plain = static(mlp, tmp_path / "plain", ctx, quant_preprocess=False)
    with caplog.at_level(logging.WARNING):
        extra = static(
            mlp, tmp_path / "extra", ctx, quant_preprocess=False, extra_options={"ActivationSymmetric": True}
        )
    assert (
        "extra_options.ActivationSymmetric is overridden by the pass parameter activation_symmetric=False"
        in caplog.text
    )

    def zero_point(model: ModelHandle) -> int:
        return int(onnx.numpy_helper.to_array(initializers(model)["fc1_relu_zero_point"]))

    assert zero_point(extra) == zero_point(plain) != 0  # asymmetric, as the parameter's default says
    symmetric = static(mlp, tmp_path / "sym", ctx, quant_preprocess=False, activation_symmetric=True)
    assert zero_point(symmetric) == 0


def test_a_node_name_selects_that_node_not_others_under_it(
    mlp_dir: Path,  # noqa: F811
    ctx: PassContext,  # noqa: F811
    tmp_path: Path,
) -> None:
    proto = onnx.load(str(mlp_dir / "model" / "model.onnx"))
    renamed = {"fc1_matmul": "fc1", "fc2_matmul": "fc1/inner"}
    for node in proto.graph.node:
        node.name = renamed.get(node.name, node.name)
    (tmp_path / "m").mkdir()
    onnx.save_model(proto, str(tmp_path / "m" / "model.onnx"))
    model = ModelHandle(
        kind="onnx", config={"model_path": str(tmp_path / "m"), "onnx_file_name": "model.onnx"}
    )
    out = static(model, tmp_path / "o", ctx, quant_preprocess=False, nodes_to_exclude=["fc1"])
    names = initializers(out)
    assert "fc1.weight_quantized" not in names and "fc2.weight_quantized" in names


@pytest.mark.parametrize(
    ("precision", "dtype"), [("int4", onnx.TensorProto.INT4), ("uint4", onnx.TensorProto.UINT4)]
)
def test_static_qdq_takes_4_bit_weights(
    mlp: ModelHandle,  # noqa: F811
    ctx: PassContext,  # noqa: F811
    tmp_path: Path,
    precision: str,
    dtype: int,
) -> None:
    from olivine.model.runner import open_runner

    out = static(
        mlp, tmp_path / "q", ctx, quant_preprocess=False, precision=precision, activation_type="uint8"
    )
    weights = [i for name, i in initializers(out).items() if name.endswith("weight_quantized")]
    assert weights and {w.data_type for w in weights} == {dtype}
    feed = {"input": np.random.default_rng(0).standard_normal((2, MLP_IN)).astype(np.float32)}
    got, want = open_runner(out).run(feed)[0], open_runner(mlp).run(feed)[0]
    assert float(np.abs(got - want).max()) < 0.5 * float(np.abs(want).max())


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"precision": "int4", "quant_format": "QOperator"}, "QOperator has no 4-bit operators"),
        ({"activation_type": "int4"}, "activation_type"),
        ({"precision": "int4", "quant_mode": "dynamic"}, "supports precision int8 or uint8"),
    ],
)
def test_4_bit_where_onnxruntime_has_none_is_refused(params: dict[str, object], message: str) -> None:
    from pydantic import ValidationError

    from olivine.passes.quant_config import static_unrunnable

    cls = PASSES.get("OnnxQuantization")
    try:
        config = cls.config_class.model_validate({"data_config": "calib", **params})
    except ValidationError as exc:
        assert message in str(exc)
        return
    found = static_unrunnable(config, Accelerator())
    assert found is not None and message in found[1]


def test_rtn_8_bit_keeps_embeddings_float_and_the_opset_and_says_so(
    bert_onnx: ModelHandle,  # noqa: F811
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from olivine.passes.base import PassContext as Context

    cls = PASSES.get("OnnxBlockWiseRtnQuantization")
    config = cls.config_class.model_validate({"bits": 8, "block_size": 16})
    (tmp_path / "q").mkdir()
    with caplog.at_level(logging.WARNING):
        out = cls().run(bert_onnx, config, tmp_path / "q", Context())
    assert "embedding Gathers stay float" in caplog.text
    counts = op_counts(out)
    assert counts["MatMulNBits"] >= 12 and "GatherBlockQuantized" not in counts
    opsets = [
        {o.domain: o.version for o in onnx.load(str(m.onnx_path)).opset_import}[""] for m in (out, bert_onnx)
    ]
    assert opsets[0] == opsets[1]


def test_the_exported_bert_names_its_inputs_in_forward_order_and_its_hidden_size(
    bert_onnx: ModelHandle,  # noqa: F811
) -> None:
    g = graph(bert_onnx)
    assert [i.name for i in g.input] == ["input_ids", "attention_mask", "token_type_ids"]
    hidden = next(o for o in g.output if o.name == "last_hidden_state")
    assert [d.dim_param for d in hidden.type.tensor_type.shape.dim] == [
        "batch_size",
        "sequence_length",
        "hidden_size",
    ]
