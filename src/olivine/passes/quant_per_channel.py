"""Per-channel weight quantization for dynamic quantization, computed for all channels at once.

onnxruntime's quantizer computes a per-channel weight's scale, zero point and quantized values in a Python
loop over its channels (``BaseQuantizer.quantize_weight_per_channel_impl``: ~50 us of NumPy calls per
channel). A BERT-small graph has ~21,000 channels, so this loop is most of a per-channel dynamic
quantization (~1 s of ~1.3 s on MiniLM). :class:`VectorizedQuantizer` computes the same values with one
NumPy expression per step over every channel, in the same dtypes and the same order of operations, so
every value is bit-identical (``tests/integration/test_shared_preprocess.py`` compares whole quantized
models with onnxruntime's ``quantize_dynamic``, and ``tests/integration/test_quant_per_channel.py`` the
values of random and corner-case weights with onnxruntime's own per-channel code).

Only the common case takes this path: float32 weights, 8/16-bit integer types, no per-tensor overrides,
no ``MinimumRealRange``; anything else is onnxruntime's own loop.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnxruntime.quantization.onnx_quantizer import ONNXQuantizer
from onnxruntime.quantization.quant_utils import (
    TENSOR_NAME_QUANT_SUFFIX,
    find_by_name,
    get_qmin_qmax_for_qType,
    normalize_axis,
)

#: Weight types this path computes (onnxruntime's other types, 4-bit and float 8, take its own loop).
_INTEGER_TYPES = (
    onnx.TensorProto.INT8,
    onnx.TensorProto.UINT8,
    onnx.TensorProto.INT16,
    onnx.TensorProto.UINT16,
)


def per_channel_params(
    weights: np.ndarray, axis: int, qtype: int, symmetric: bool, reduce_range: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Zero points, scales (one per index of ``axis``) and the quantized ``weights``, as onnxruntime's
    ``quantize_data`` gives them channel by channel (``compute_scale_zp`` then ``quantize_nparray``,
    ``min_real_range`` None), for float32 ``weights`` with at least one element per channel."""
    qmin, qmax = get_qmin_qmax_for_qType(qtype, reduce_range, symmetric=symmetric)
    others = tuple(i for i in range(weights.ndim) if i != axis)
    # Per channel: rmin/rmax in the weights' dtype, widened to include 0 (min and max are exact, so
    # the order in which a channel's values are visited does not matter).
    rmin = np.minimum(weights.min(axis=others), np.array(0, dtype=weights.dtype))
    rmax = np.maximum(weights.max(axis=others), np.array(0, dtype=weights.dtype))
    if symmetric:
        absmax = np.maximum(np.abs(rmin), np.abs(rmax))
        rmin, rmax = -absmax, +absmax
    dr = rmax.astype(np.float64) - rmin.astype(np.float64)
    dq = np.array(qmax, dtype=np.float64) - np.array(qmin, dtype=np.float64)
    scale = dr / dq  # float64, as compute_scale_zp divides
    tiny = scale < np.finfo(weights.dtype).tiny  # such a channel gets scale 1 and zero point 0
    if symmetric:
        zero = np.array(np.round((qmin + qmax) / np.array(2.0, dtype=np.float64)), dtype=qmin.dtype)
        zero_points = np.full(scale.shape, zero, dtype=qmin.dtype)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            shifted = np.round(qmin - rmin / np.where(tiny, 1.0, scale))
        zero_points = shifted.astype(qmin.dtype)
    zero_points = np.where(tiny, np.array(0, dtype=qmin.dtype), zero_points).astype(qmin.dtype)
    scales = np.where(tiny, np.array(1.0, dtype=weights.dtype), scale.astype(weights.dtype))
    # quantize_nparray: (x / scale).round() + zero_point in float32, clipped to the type's full range.
    shape = [1] * weights.ndim
    shape[axis] = -1
    full_min, full_max = get_qmin_qmax_for_qType(qtype, reduce_range=False, symmetric=False)
    values = (weights.astype(np.float32) / scales.reshape(shape)).round() + zero_points.reshape(shape)
    values = np.asarray(values)
    np.clip(values, full_min, full_max, out=values)
    return zero_points, scales, values.astype(full_min.dtype)


class VectorizedQuantizer(ONNXQuantizer):
    """onnxruntime's dynamic/QOperator quantizer with per-channel weights computed for every channel at
    once (see the module docstring); everything else is onnxruntime's."""

    def quantize_weight_per_channel_impl(
        self,
        weight_name: str,
        weight_qType: int,  # onnxruntime's parameter name (a subclass keeps it)
        channel_axis: int,
        reduce_range: bool = True,
        keep_float_weight: bool = False,
    ) -> Any:
        initializer = find_by_name(weight_name, self.model.initializer())
        fast = (
            initializer is not None
            and initializer.data_type == onnx.TensorProto.FLOAT
            and weight_qType in _INTEGER_TYPES
            and self.min_real_range is None
        )
        if fast:
            weights = onnx.numpy_helper.to_array(initializer)
            valid, axis = normalize_axis(channel_axis, weights.ndim)
            default = [{"axis": axis}]
            overrides = self.tensor_quant_overrides.get_per_channel_overrides(
                weight_name, default_val=default
            )
            # NaN or infinite weights: onnxruntime's own checks and errors
            fast = valid and overrides == default and weights.size > 0 and bool(np.isfinite(weights).all())
        if not fast:
            return super().quantize_weight_per_channel_impl(
                weight_name, weight_qType, channel_axis, reduce_range, keep_float_weight
            )
        symmetric = self.is_weight_symmetric(weight_qType)
        zero_points, scales, quantized = per_channel_params(
            weights, axis, weight_qType, symmetric, self.reduce_range and reduce_range
        )
        q_weight_name = weight_name + TENSOR_NAME_QUANT_SUFFIX
        zp_name = weight_name + "_zero_point"
        scale_name = weight_name + "_scale"
        dims = [initializer.dims[axis]]
        scale_initializer = onnx.helper.make_tensor(scale_name, initializer.data_type, dims, scales.tolist())
        zero_initializer = onnx.helper.make_tensor(zp_name, weight_qType, dims, zero_points.tolist())
        self.model.initializer_extend([scale_initializer, zero_initializer])
        if not keep_float_weight:
            dtype = onnx.helper.tensor_dtype_to_np_dtype(weight_qType)
            data = np.asarray(quantized, dtype=dtype).reshape(initializer.dims)
            self.model.initializer_extend([onnx.numpy_helper.from_array(data, q_weight_name)])
        return q_weight_name, zp_name, scale_name
