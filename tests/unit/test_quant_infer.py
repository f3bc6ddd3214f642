"""The dynamic quantizer's shape-inference round trip in memory gives onnxruntime's result, byte for byte."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import onnx_quantizer
from onnxruntime.quantization.onnx_model import ONNXModel
from onnxruntime.quantization.quant_utils import save_and_reload_model_with_shape_infer

from olivine.passes.quant_infer import in_memory_shape_inference, reload_with_shape_infer


def _model() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((32, 64)).astype(np.float32), "w")  # 8 KB: external
    b = numpy_helper.from_array(rng.standard_normal(32).astype(np.float32), "b")  # 128 B: stays inline
    w2 = numpy_helper.from_array(rng.standard_normal((32, 16)).astype(np.float32), "w2")
    w2.data_location = TensorProto.DEFAULT  # as onnx.load leaves a tensor it read from external data
    shape = numpy_helper.from_array(np.array([-1, 4, 4], np.int64), "shape")  # read by shape inference
    # onnx's rule is sys.getsizeof(raw_data) >= 1024: 990 bytes stay inline, 991 go external.
    edge = numpy_helper.from_array(np.zeros(990, np.uint8), "edge")
    edge2 = numpy_helper.from_array(np.zeros(991, np.uint8), "edge2")
    nodes = [
        helper.make_node("Gemm", ["x", "w", "b"], ["g"], transB=1),
        helper.make_node("Relu", ["g"], ["r"]),
        helper.make_node("MatMul", ["r", "w2"], ["m"]),
        helper.make_node("Reshape", ["m", "shape"], ["y"]),
        helper.make_node("Shape", ["edge"], ["edge_shape"]),
        helper.make_node("Shape", ["edge2"], ["edge2_shape"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("edge_shape", TensorProto.INT64, None),
            helper.make_tensor_value_info("edge2_shape", TensorProto.INT64, None),
        ],
        [w, b, w2, shape, edge, edge2],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.metadata_props.add(key="kept", value="yes")
    ONNXModel(model).replace_gemm_with_matmul()  # what the quantizer does right before its round trip
    return model


def test_the_in_memory_round_trip_is_onnxruntimes_byte_for_byte() -> None:
    model = _model()
    expected = save_and_reload_model_with_shape_infer(model)  # leaves its input as it was
    got = reload_with_shape_infer(model)
    assert got is model  # made in place (the quantizer replaces its model with the result)
    assert got.SerializeToString() == expected.SerializeToString()
    # It did infer something: the intermediate values have shapes, the weights are in place.
    assert {v.name for v in got.graph.value_info} >= {"r", "m"}
    assert all(not t.external_data and t.HasField("raw_data") for t in got.graph.initializer)
    assert {p.key: p.value for p in got.metadata_props} == {"kept": "yes", "onnx.infer": "onnxruntime.quant"}


def test_a_result_that_could_differ_is_left_to_onnxruntime_with_the_model_put_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = _model()
    before = model.SerializeToString()
    expected = save_and_reload_model_with_shape_infer(model)
    infer = onnx.shape_inference.infer_shapes

    def odd_inference(light: bytes) -> onnx.ModelProto:  # hands back data for a weight it never had
        inferred = infer(light)
        assert inferred.graph.initializer[0].name == "w" and not inferred.graph.initializer[0].raw_data
        inferred.graph.initializer[0].raw_data = b"\0" * 8
        return inferred

    monkeypatch.setattr(onnx.shape_inference, "infer_shapes", odd_inference)
    got = reload_with_shape_infer(model)
    assert got is not model and got.SerializeToString() == expected.SerializeToString()
    assert model.SerializeToString() == before


def test_a_model_with_subgraphs_takes_onnxruntimes_way() -> None:
    model = _model()
    branch = helper.make_graph(
        [helper.make_node("Identity", ["inner"], ["out"])],
        "branch",
        [],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.ones(512, np.float32), "inner")],
    )
    cond = numpy_helper.from_array(np.array(True), "cond")
    model.graph.initializer.append(cond)
    model.graph.node.append(
        helper.make_node("If", ["cond"], ["chosen"], then_branch=branch, else_branch=branch)
    )
    before = model.SerializeToString()
    got = reload_with_shape_infer(model)
    assert got is not model and model.SerializeToString() == before
    assert got.SerializeToString() == save_and_reload_model_with_shape_infer(model).SerializeToString()


def test_the_caller_model_is_restored_when_serialising_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model()
    before = model.SerializeToString()

    seen: list[bool] = []

    def fail(self: onnx.ModelProto) -> bytes:
        seen.append(any(t.data_location == TensorProto.EXTERNAL for t in self.graph.initializer))
        raise RuntimeError("no")

    monkeypatch.setattr(onnx.ModelProto, "SerializeToString", fail)
    with pytest.raises(RuntimeError, match="no"):
        reload_with_shape_infer(model)
    monkeypatch.undo()
    assert seen == [True]  # it failed with the weights taken out
    assert model.SerializeToString() == before


def test_the_quantizer_takes_it_only_inside_the_block() -> None:
    original = onnx_quantizer.save_and_reload_model_with_shape_infer
    with in_memory_shape_inference():
        assert onnx_quantizer.save_and_reload_model_with_shape_infer is reload_with_shape_infer
    assert onnx_quantizer.save_and_reload_model_with_shape_infer is original
    with pytest.raises(ValueError), in_memory_shape_inference():
        raise ValueError("a failing quantizer")
    assert onnx_quantizer.save_and_reload_model_with_shape_infer is original
