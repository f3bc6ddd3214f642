"""What static quantization leaves in float (index arithmetic, block-quantized nodes), and the check that
every scale it wrote is usable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from olivine.errors import PassRunError
from olivine.passes.base import PassContext
from olivine.passes.quant_guards import check_scales, integer_paths, kept_in_float


def _bucket_model() -> onnx.ModelProto:
    """x (float) -> MatMul -> Shape ... and a relative-position bucket: positions (int64) -> Cast(float)
    -> Div -> Log -> Mul -> Cast(int64) -> Gather of a bias table, added to the MatMul's output."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])
    pos = helper.make_tensor_value_info("pos", TensorProto.INT64, [4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])
    inits = [
        numpy_helper.from_array(np.ones((4, 4), np.float32), "w"),
        numpy_helper.from_array(np.array(2.0, np.float32), "two"),
        numpy_helper.from_array(np.arange(8, dtype=np.float32), "table"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"], name="matmul"),
        helper.make_node("Shape", ["h"], ["h_shape"], name="shape"),  # float -> int64: not followed back
        helper.make_node("Cast", ["h_shape"], ["h_shape_f"], name="shape_to_float", to=TensorProto.FLOAT),
        helper.make_node("Cast", ["h_shape_f"], ["h_shape_i"], name="shape_to_int", to=TensorProto.INT64),
        helper.make_node("Cast", ["pos"], ["pos_f"], name="to_float", to=TensorProto.FLOAT),
        helper.make_node("Div", ["pos_f", "two"], ["ratio"], name="div"),
        helper.make_node("Log", ["ratio"], ["log"], name="log"),
        helper.make_node("Mul", ["log", "two"], ["scaled"], name="mul"),
        helper.make_node("Cast", ["scaled"], ["bucket"], name="to_int", to=TensorProto.INT64),
        helper.make_node("Gather", ["table", "bucket"], ["bias"], name="gather"),
        helper.make_node("Add", ["h", "bias"], ["y"], name="add"),
    ]
    graph = helper.make_graph(nodes, "g", [x, pos], [y], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_the_float_arithmetic_of_an_index_is_found_and_the_network_around_it_is_not() -> None:
    found = set(integer_paths(_bucket_model(), PassContext()))
    assert {"to_float", "div", "log", "mul", "to_int"} <= found
    # the shape's round trip is float too, but the Shape of the network's activations is not followed
    assert {"shape_to_float", "shape_to_int"} <= found
    assert not found & {"matmul", "shape", "gather", "add"}


def test_a_tensor_of_unknown_type_is_not_followed() -> None:
    model = _bucket_model()
    # A Mul from a domain ONNX cannot infer: its output has no type, so nothing before the Cast is taken
    # for index arithmetic (the rest of the graph is still inferred).
    mul = next(n for n in model.graph.node if n.name == "mul")
    mul.op_type, mul.domain = "Scale", "com.example"
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    found = set(integer_paths(model, PassContext()))
    assert not found & {"to_int", "mul", "log", "div", "to_float"}
    assert {"shape_to_float", "shape_to_int"} <= found


def test_a_graph_without_integer_casts_has_no_integer_paths() -> None:
    model = _bucket_model()
    graph = model.graph
    keep = [n for n in graph.node if n.name in ("matmul",)]
    del graph.node[:]
    graph.node.extend([*keep, helper.make_node("Identity", ["h"], ["y"], name="out")])
    assert integer_paths(model, PassContext()) == []


def test_kept_in_float_adds_block_quantized_nodes_and_refuses_unnamed_ones(tmp_path: Path) -> None:
    model = _bucket_model()
    model.graph.node.append(helper.make_node("MatMulNBits", ["x"], ["q"], name="mm4", domain="com.microsoft"))
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    kept = kept_in_float(path, PassContext())
    assert kept[0] == "mm4" and "log" in kept
    model.graph.node[-1].name = ""
    onnx.save(model, str(path))
    with pytest.raises(PassRunError, match="no name"):
        kept_in_float(path, PassContext())


def _qdq_model(scale: float) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    inits = [
        numpy_helper.from_array(np.array(scale, np.float32), "x_scale"),
        numpy_helper.from_array(np.array(0, np.int8), "x_zero_point"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero_point"], ["xq"], name="q"),
        helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zero_point"], ["y"], name="dq"),
    ]
    graph = helper.make_graph(nodes, "g", [x], [y], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("scale", [np.nan, np.inf, 0.0, -1.0])
def test_a_quantized_model_with_an_unusable_scale_is_refused_naming_the_tensor(
    scale: float, tmp_path: Path
) -> None:
    path = tmp_path / "q.onnx"
    onnx.save(_qdq_model(scale), str(path))
    with pytest.raises(PassRunError, match="scale of 'x'"):
        check_scales(path)


def test_a_quantized_model_with_usable_scales_passes(tmp_path: Path) -> None:
    path = tmp_path / "q.onnx"
    onnx.save(_qdq_model(0.05), str(path))
    check_scales(path)  # raises on an unusable scale


def test_what_feeds_a_where_is_kept_in_float_for_qoperator_only(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])
    mask = helper.make_tensor_value_info("mask", TensorProto.BOOL, [2, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])
    nodes = [
        helper.make_node("Add", ["x", "x"], ["scores"], name="scores"),
        helper.make_node("Constant", [], ["fill"], name="fill", value_float=-1e4),
        helper.make_node("Where", ["mask", "fill", "scores"], ["y"], name="masked_fill"),
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "g", [x, mask], [y]), opset_imports=[helper.make_opsetid("", 17)]
    )
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    assert kept_in_float(path, PassContext(), qoperator=True) == ["scores"]  # not the Constant
    assert kept_in_float(path, PassContext()) == []
