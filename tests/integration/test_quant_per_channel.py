"""Per-channel weight quantization computed for every channel at once gives exactly onnxruntime's values
(its own per-channel loop is the reference), and onnxruntime's loop still runs where the fast path does
not apply."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization.onnx_quantizer import ONNXQuantizer
from onnxruntime.quantization.quant_utils import QuantizationMode, QuantType, add_infer_metadata
from onnxruntime.quantization.registry import IntegerOpsRegistry

from olivine.passes.quant_per_channel import VectorizedQuantizer, per_channel_params

pytestmark = pytest.mark.integration

TYPES = [TensorProto.INT8, TensorProto.UINT8, TensorProto.INT16, TensorProto.UINT16]


def corner_weights() -> np.ndarray:
    """A (5, 8) weight whose columns are the corner cases: all zero, constant positive, all negative,
    values below float32's normal range, a huge range, a single outlier, and two random ones."""
    rng = np.random.default_rng(1)
    w = rng.standard_normal((5, 8)).astype(np.float32)
    w[:, 0] = 0.0
    w[:, 1] = 0.25
    w[:, 2] = -np.abs(w[:, 2]) - 0.1
    w[:, 3] = np.float32(1e-39) * np.arange(5, dtype=np.float32)
    w[:, 4] = np.array([-3e38, 1e-3, 0.0, 2e38, 5.0], dtype=np.float32)
    w[:, 5] = 0.0
    w[2, 5] = -7.5
    return w


def _reference(
    weights: np.ndarray, axis: int, qtype: int, symmetric: bool, reduce_range: bool
) -> tuple[list[Any], list[Any], np.ndarray]:
    """onnxruntime's own per-channel loop (BaseQuantizer.quantize_weight_per_channel_impl) on ``weights``:
    its initializers' values."""
    model = _matmul_model(weights)
    options = {"WeightSymmetric": symmetric}
    quantizer = ONNXQuantizer(
        model, True, reduce_range, QuantizationMode.IntegerOps, False, qtype, QuantType.QUInt8, None, [], [],
        ["MatMul"], options,
    )  # fmt: skip
    names = ONNXQuantizer.quantize_weight_per_channel_impl(quantizer, "W", qtype, axis, reduce_range)
    found = {i.name: i for i in quantizer.model.initializer()}
    q_name, zp_name, scale_name = names
    return (
        list(numpy_helper.to_array(found[zp_name])),
        list(numpy_helper.to_array(found[scale_name])),
        numpy_helper.to_array(found[q_name]),
    )


def _matmul_model(weights: np.ndarray) -> onnx.ModelProto:
    rows = weights.shape[0]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, rows])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(weights, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model = onnx.shape_inference.infer_shapes(model)
    add_infer_metadata(model)
    return model


@pytest.mark.parametrize("qtype", TYPES)
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("reduce_range", [True, False])
def test_per_channel_params_are_onnxruntimes_bit_for_bit(
    qtype: int, symmetric: bool, reduce_range: bool
) -> None:
    rng = np.random.default_rng(qtype)
    for weights in (corner_weights(), (rng.standard_normal((64, 48)) * 0.05).astype(np.float32)):
        for axis in (0, 1, -1):
            zero_points, scales, quantized = per_channel_params(
                weights, axis % 2, qtype, symmetric, reduce_range
            )
            ref_zero, ref_scale, ref_quantized = _reference(weights, axis, qtype, symmetric, reduce_range)
            assert zero_points.tolist() == [int(z) for z in ref_zero]
            assert scales.tobytes() == np.asarray(ref_scale, dtype=np.float32).tobytes()
            assert quantized.astype(ref_quantized.dtype).tobytes() == ref_quantized.tobytes()


def test_per_channel_params_on_a_rank_4_weight() -> None:
    weights = (np.random.default_rng(3).standard_normal((6, 3, 2, 2)) * 4).astype(np.float32)
    for axis in range(4):
        zero_points, scales, quantized = per_channel_params(weights, axis, TensorProto.UINT8, False, False)
        assert quantized.shape == weights.shape and len(scales) == weights.shape[axis]
        moved = np.moveaxis(weights, axis, 0).reshape(weights.shape[axis], -1)
        back = np.moveaxis(quantized, axis, 0).reshape(weights.shape[axis], -1)
        for c in range(weights.shape[axis]):
            one_zero, one_scale, one_q = per_channel_params(
                moved[c : c + 1], 0, TensorProto.UINT8, False, False
            )
            assert (one_zero[0], one_scale[0]) == (zero_points[c], scales[c])
            assert one_q[0].tolist() == back[c].tolist()


def _quantized(quantizer_cls: type[ONNXQuantizer], weights: np.ndarray, **options: Any) -> bytes:
    model = _matmul_model(weights)
    quantizer = quantizer_cls(
        model, True, False, QuantizationMode.IntegerOps, False, TensorProto.INT8, QuantType.QUInt8, None, [], [],
        list(IntegerOpsRegistry.keys()), {"MatMulConstBOnly": True, **options},
    )  # fmt: skip
    quantizer.quantize_model()
    return bytes(quantizer.model.model.SerializeToString())


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"WeightSymmetric": False},
        {"MinimumRealRange": 0.5},  # onnxruntime's loop (the fast path leaves min_real_range to it)
        {"TensorQuantOverrides": {"W": [{"axis": 1, "symmetric": False}]}},  # onnxruntime's loop
    ],
)
def test_the_vectorized_quantizer_writes_onnxruntimes_model(options: dict[str, Any]) -> None:
    weights = corner_weights()
    assert _quantized(VectorizedQuantizer, weights, **options) == _quantized(
        ONNXQuantizer, weights, **options
    )


def test_weights_with_nan_take_onnxruntimes_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not finite: onnxruntime's own loop (and its own checks) decide."""
    calls: list[str] = []
    real = ONNXQuantizer.quantize_weight_per_channel_impl

    def counted(self: Any, name: str, *args: Any) -> Any:
        calls.append(name)
        return real(self, name, *args)

    monkeypatch.setattr(ONNXQuantizer, "quantize_weight_per_channel_impl", counted)
    weights = corner_weights()
    _quantized(VectorizedQuantizer, weights)
    assert calls == []
    weights[0, 6] = np.nan
    with pytest.raises(AssertionError):  # onnxruntime's "scale issue"
        _quantized(VectorizedQuantizer, weights)
    assert calls == ["W"]
