"""GraphSurgeries where Olive 0.13's surgeon with the same name and parameters did something else (found by
running both on the same graphs): each test checks the graph and its numbers against the input model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from test_graph_surgeries import graph, ops, save, surgery, vinfo

from olivine.errors import PassRunError
from olivine.model.handle import ModelHandle
from olivine.model.runner import open_runner
from onnx_fixtures import save_proto

pytestmark = pytest.mark.integration

RNG = np.random.default_rng(7)


def _same_numbers(a: ModelHandle, b: ModelHandle, feed: dict[str, Any], atol: float = 1e-5) -> None:
    for got, want in zip(open_runner(a).run(feed), open_runner(b).run(feed), strict=False):
        np.testing.assert_allclose(got, want, atol=atol)


def _branch(name: str, nodes: list[Any], out: str) -> Any:
    return helper.make_graph(nodes, name, [], [vinfo(out, [2])])


def test_replace_attention_mask_value_reaches_if_branches(tmp_path: Path) -> None:
    big = helper.make_tensor("v", TensorProto.FLOAT, [2], [-3.4e38, 0.0])
    then = _branch(
        "then",
        [helper.make_node("Constant", [], ["c"], value=big), helper.make_node("Add", ["m", "c"], ["t"])],
        "t",
    )
    other = _branch("else", [helper.make_node("Identity", ["m"], ["e"])], "e")
    nodes = [helper.make_node("If", ["cond"], ["y"], then_branch=then, else_branch=other)]
    model = save(
        tmp_path / "m", nodes, [vinfo("m", [2]), vinfo("cond", [], TensorProto.BOOL)], [vinfo("y", [2])]
    )
    out = surgery(model, tmp_path / "o", {"surgeon": "ReplaceAttentionMaskValue"})
    y = open_runner(out).run({"m": np.zeros(2, np.float32), "cond": np.array(True)})[0]
    assert y.tolist() == [-1e4, 0.0]


def test_skip_simplified_layer_norm_without_epsilon_uses_onnxruntimes_default(tmp_path: Path) -> None:
    # onnxruntime's default epsilon is 1e-12 for the skip form (1e-5 for the plain one): on small
    # activations a wrong epsilon changes the output by O(1).
    gamma = numpy_helper.from_array(np.ones(16, np.float32), "g")
    node = helper.make_node(
        "SkipSimplifiedLayerNormalization", ["x", "s", "g"], ["y"], domain="com.microsoft"
    )
    inputs = [vinfo("x", [2, 16]), vinfo("s", [2, 16])]
    model = save(tmp_path / "m", [node], inputs, [vinfo("y", [2, 16])], [gamma])
    out = surgery(model, tmp_path / "o", {"surgeon": "SimplifiedLayerNormToRMSNorm"})
    feed = {i.name: (RNG.standard_normal((2, 16)) * 1e-3).astype(np.float32) for i in inputs}
    _same_numbers(out, model, feed, atol=1e-4)


def _erf_after_contrib(folder: Path, opset: int) -> ModelHandle:
    """Erf fed by an onnxruntime-only op: shape inference cannot give Erf's input a type."""
    nodes = [
        helper.make_node("FastGelu", ["x"], ["h"], domain="com.microsoft"),
        helper.make_node("Erf", ["h"], ["y"], name="erf"),
    ]
    proto = helper.make_model(
        helper.make_graph(nodes, "g", [vinfo("x", [2, 4])], [vinfo("y", [2, 4])]),
        opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid("com.microsoft", 1)],
        ir_version=8,
    )
    return save_proto(folder, proto)


def test_erf_with_an_untyped_input_is_replaced_through_castlike(tmp_path: Path) -> None:
    model = _erf_after_contrib(tmp_path / "m", 17)
    out = surgery(model, tmp_path / "o", {"surgeon": "ReplaceErfWithTanh"})
    assert "Erf" not in ops(out) and "CastLike" in ops(out) and "Tanh" in ops(out)
    _same_numbers(out, model, {"x": RNG.standard_normal((2, 4)).astype(np.float32)}, atol=0.03)


def test_erf_left_in_place_is_an_error_not_a_silent_success(tmp_path: Path) -> None:
    model = _erf_after_contrib(tmp_path / "m", 13)  # no CastLike before opset 15
    with pytest.raises(PassRunError, match=r"Erf node\(s\) \['erf'\] not replaced"):
        surgery(model, tmp_path / "o", {"surgeon": "ReplaceErfWithTanh"})


def test_reciprocal_read_by_several_nodes(tmp_path: Path) -> None:
    nodes = [
        helper.make_node("Reciprocal", ["x"], ["r"]),
        helper.make_node("Mul", ["a", "r"], ["y"], name="m1"),
        helper.make_node("Mul", ["r", "a"], ["y2"], name="m2"),
        helper.make_node("Neg", ["r"], ["y3"]),
    ]
    outputs = [vinfo("y", [2]), vinfo("y2", [2]), vinfo("y3", [2])]
    model = save(tmp_path / "m", nodes, [vinfo("x", [2]), vinfo("a", [2])], outputs)
    out = surgery(model, tmp_path / "o", {"surgeon": "ReciprocalMulToDiv"})
    assert sorted(ops(out)) == ["Div", "Div", "Neg", "Reciprocal"]  # the Neg still reads the Reciprocal
    assert [o.name for o in graph(out).output] == ["y", "y2", "y3"]
    feed = {"x": np.array([2, 4], np.float32), "a": np.array([1, 3], np.float32)}
    _same_numbers(out, model, feed)
    only_muls = save(tmp_path / "m2", nodes[:3], [vinfo("x", [2]), vinfo("a", [2])], outputs[:2])
    assert ops(surgery(only_muls, tmp_path / "o2", {"surgeon": "ReciprocalMulToDiv"})) == ["Div", "Div"]


@pytest.mark.parametrize("form", ["keepdims by default", "axes attribute (opset 11)"])
def test_lp_norm_forms(tmp_path: Path, form: str) -> None:
    consts = [
        numpy_helper.from_array(np.array(2.0, np.float32), "two"),
        numpy_helper.from_array(np.array(0.5, np.float32), "half"),
    ]
    if form.startswith("keepdims"):
        consts.append(numpy_helper.from_array(np.array([-1], np.int64), "axes"))
        reduce = helper.make_node("ReduceSum", ["sq", "axes"], ["sum"])
        opset = 17
    else:
        reduce = helper.make_node("ReduceSum", ["sq"], ["sum"], axes=[1], keepdims=1)
        opset = 11
    nodes = [
        helper.make_node("Pow", ["x", "two"], ["sq"]),
        reduce,
        helper.make_node("Pow", ["sum", "half"], ["norm"]),
        helper.make_node("Div", ["x", "norm"], ["y"]),
    ]
    proto = helper.make_model(
        helper.make_graph(nodes, "g", [vinfo("x", [2, 3])], [vinfo("y", [2, 3])], consts),
        opset_imports=[helper.make_opsetid("", opset)],
        ir_version=8,
    )
    model = save_proto(tmp_path / "m", proto)
    out = surgery(model, tmp_path / "o", {"surgeon": "PowReduceSumPowDiv2LpNorm"})
    assert ops(out) == ["LpNormalization"]
    assert not graph(out).initializer  # the pattern's constants went with it
    _same_numbers(out, model, {"x": np.array([[3, 4, 0], [1, 1, 1]], np.float32)}, atol=1e-6)


def test_gemm_with_an_empty_bias_input_becomes_a_matmul(tmp_path: Path) -> None:
    w = numpy_helper.from_array(RNG.standard_normal((4, 6)).astype(np.float32), "W")
    nodes = [helper.make_node("Gemm", ["x", "W", ""], ["y"])]
    model = save(tmp_path / "m", nodes, [vinfo("x", [2, 4])], [vinfo("y", [2, 6])], [w])
    out = surgery(model, tmp_path / "o", {"surgeon": "GemmToMatMulAdd"})
    assert ops(out) == ["MatMul"]
    _same_numbers(out, model, {"x": RNG.standard_normal((2, 4)).astype(np.float32)})


def test_negative_indices_count_from_the_end(tmp_path: Path) -> None:
    nodes = [helper.make_node("Add", ["x", "b"], ["y"], name="add")]
    inputs = [vinfo("x", ["n", 4]), vinfo("b", ["n", 4])]
    model = save(tmp_path / "m", nodes, inputs, [vinfo("y", ["n", 4])])
    out = surgery(
        model,
        tmp_path / "o",
        {"surgeon": "RenameInputDims", "input_idx": -1, "dim_idx": -2, "dim_name": "batch"},
        {"surgeon": "RenameOutputDims", "output_idx": -1, "dim_idx": -2, "dim_name": "rows"},
        {"surgeon": "ZeroOutInput", "node_name": "add", "input_idx": -1},
    )
    g = graph(out)
    assert g.input[-1].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert g.output[0].type.tensor_type.shape.dim[0].dim_param == "rows"
    x = RNG.standard_normal((1, 4)).astype(np.float32)
    np.testing.assert_array_equal(open_runner(out).run({"x": x, "b": x})[0], x)  # b became zeros
    with pytest.raises(PassRunError, match="dim_idx -3 is out of range"):
        surgery(
            model,
            tmp_path / "o2",
            {"surgeon": "RenameInputDims", "input_idx": 0, "dim_idx": -3, "dim_name": "z"},
        )


def test_expose_outputs_in_graph_order(tmp_path: Path) -> None:
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="first"),
        helper.make_node("Neg", ["r"], ["n"], name="second"),
        helper.make_node("Abs", ["n"], ["y"], name="third"),
    ]
    model = save(tmp_path / "m", nodes, [vinfo("x", [2])], [vinfo("y", [2])])
    out = surgery(model, tmp_path / "o", {"surgeon": "ExposeOutputs", "names": ["second", "first"]})
    assert [o.name for o in graph(out).output] == ["y", "r", "n"]


def test_remove_memcpy_keeps_the_output_type(tmp_path: Path) -> None:
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("MemcpyToHost", ["r"], ["y"]),
    ]
    model = save(tmp_path / "m", nodes, [vinfo("x", [2])], [vinfo("y", [2])])
    out = surgery(model, tmp_path / "o", {"surgeon": "RemoveMemcpy"})
    (output,) = graph(out).output
    assert output.name == "y" and output.type.tensor_type.elem_type == TensorProto.FLOAT
    assert [d.dim_value for d in output.type.tensor_type.shape.dim] == [2]


def test_decompose_quick_gelu_drops_what_it_left_unused(tmp_path: Path) -> None:
    nodes = [helper.make_node("QuickGelu", ["x"], ["y"], domain="com.microsoft", alpha=1.702)]
    model = save(tmp_path / "m", nodes, [vinfo("x", [2])], [vinfo("y", [2])])
    out = surgery(model, tmp_path / "o", {"surgeon": "DecomposeQuickGelu"})
    proto = onnx.load(str(out.onnx_path))
    assert all(n.domain == "" for n in proto.graph.node)
    assert "com.microsoft" not in {o.domain for o in proto.opset_import}


# --- the quantization-graph surgeons (Olive's dla_transforms module, plain ONNX) -------------------


@pytest.fixture(scope="module")
def qdq_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ModelHandle]:
    """An MLP (MatMul, Relu, MatMul) and onnxruntime's QDQ quantization of it, uint8 and int8 activations."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    base = tmp_path_factory.mktemp("qdq")
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((8, 16)).astype(np.float32), "W1"),
        numpy_helper.from_array(rng.standard_normal((16, 4)).astype(np.float32), "W2"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "W1"], ["h"], name="mm1"),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("MatMul", ["r", "W2"], ["y"], name="mm2"),
    ]
    fp32 = save(base / "fp32", nodes, [vinfo("x", ["b", 8])], [vinfo("y", ["b", 4])], inits)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"x": rng.standard_normal((4, 8)).astype(np.float32)} for _ in range(4)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    models = {"fp32": fp32}
    for name, activation in (("u8", QuantType.QUInt8), ("s8", QuantType.QInt8)):
        (base / name).mkdir()
        quantize_static(
            str(fp32.onnx_path),
            str(base / name / "model.onnx"),
            Reader(),
            quant_format=QuantFormat.QDQ,
            activation_type=activation,
            weight_type=QuantType.QInt8,
            extra_options={"QDQKeepRemovableActivations": True},
        )
        models[name] = ModelHandle(
            kind="onnx", config={"model_path": str(base / name), "onnx_file_name": "model.onnx"}
        )
    return models


def _feed() -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(1).standard_normal((3, 8)).astype(np.float32)}


@pytest.mark.parametrize("kind", ["u8", "s8"])
def test_remove_qdq_and_remove_deqlin_give_back_a_float_model(
    qdq_models: dict[str, ModelHandle], tmp_path: Path, kind: str
) -> None:
    out = surgery(qdq_models[kind], tmp_path / "o", {"surgeon": "RemoveQDQ"}, {"surgeon": "RemoveDeqLin"})
    assert sorted(ops(out)) == ["MatMul", "MatMul", "Relu"]
    assert all(i.data_type == TensorProto.FLOAT for i in graph(out).initializer)
    # What is left is the float model with int8-rounded weights.
    _same_numbers(out, qdq_models["fp32"], _feed(), atol=0.3)


@pytest.mark.parametrize("kind", ["u8", "s8"])
def test_qdq_to_clip_clips_to_the_quantized_range(
    qdq_models: dict[str, ModelHandle], tmp_path: Path, kind: str
) -> None:
    model = qdq_models[kind]
    out = surgery(model, tmp_path / "o", {"surgeon": "QDQToClip"})
    assert "QuantizeLinear" not in ops(out) and ops(out).count("Clip") == 4
    proto = onnx.load(str(model.onnx_path))
    x_scale = next(numpy_helper.to_array(i) for i in proto.graph.initializer if i.name == "x_scale")
    x_zp = next(numpy_helper.to_array(i) for i in proto.graph.initializer if i.name == "x_zero_point")
    info = np.iinfo(x_zp.dtype)
    low = next(numpy_helper.to_array(i) for i in graph(out).initializer if i.name.endswith("clip_min"))
    assert float(low) == pytest.approx((info.min - int(x_zp)) * float(x_scale))
    # Clip keeps the range and drops the rounding: within one quantization step of the QDQ model.
    _same_numbers(out, model, _feed(), atol=0.5)


def test_remove_qdq_keeps_a_clip_after_graph_inputs(
    qdq_models: dict[str, ModelHandle], tmp_path: Path
) -> None:
    out = surgery(qdq_models["u8"], tmp_path / "o", {"surgeon": "RemoveQDQ", "keep_clip_after_inputs": True})
    g = graph(out)
    clips = [n for n in g.node if n.op_type == "Clip"]
    assert len(clips) == 1 and clips[0].input[0] == "x"
    assert "QuantizeLinear" not in ops(out)


def test_expose_quantized_output(qdq_models: dict[str, ModelHandle], tmp_path: Path) -> None:
    model = qdq_models["u8"]
    out = surgery(model, tmp_path / "o", {"surgeon": "ExposeQuantizedOutput", "output_name": "y"})
    g = graph(out)
    assert [o.name for o in g.output][1:] == ["y_exposed_scale_output", "y_exposed_zero_point_output"]
    assert g.output[0].type.tensor_type.elem_type == TensorProto.UINT8
    q, scale, zero_point = open_runner(out).run(_feed())
    want = open_runner(model).run(_feed())[0]
    np.testing.assert_allclose((q.astype(np.float32) - zero_point[0]) * scale[0], want, atol=1e-6)


def test_intermediate_tensors_and_value_shapes(qdq_models: dict[str, ModelHandle], tmp_path: Path) -> None:
    model = qdq_models["fp32"]
    out = surgery(
        model,
        tmp_path / "o",
        {"surgeon": "AddIntermediateTensorsToOutputs", "intermediate_tensor_to_add": ["r"]},
    )
    assert [o.name for o in graph(out).output] == ["y", "r"]
    everything = surgery(model, tmp_path / "all", {"surgeon": "AddIntermediateTensorsToOutputs"})
    assert [o.name for o in graph(everything).output] == ["y", "h", "r"]
    with pytest.raises(PassRunError, match=r"no node of the graph computes \['nope'\]"):
        surgery(
            model,
            tmp_path / "bad",
            {"surgeon": "AddIntermediateTensorsToOutputs", "intermediate_tensor_to_add": ["nope"]},
        )
    shaped = surgery(
        model, tmp_path / "s", {"surgeon": "InferShapes"}, {"surgeon": "RemoveAllTensorValueShapes"}
    )
    info = {v.name: v.type.tensor_type for v in graph(shaped).value_info}
    assert info and all(t.elem_type == TensorProto.FLOAT and not t.HasField("shape") for t in info.values())
