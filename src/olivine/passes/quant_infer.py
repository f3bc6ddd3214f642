"""onnxruntime's dynamic quantizer's shape-inference round trip, in memory, same result.

``ONNXQuantizer.__init__`` (dynamic mode) calls ``quant_utils.save_and_reload_model_with_shape_infer``
after it turns Gemm nodes into MatMul: a deep copy of the model, ``onnx.save_model`` with every
initializer of 1 KB or more in an external data file, ``onnx.shape_inference.infer_shapes_path`` on that
file into a second file, ``onnx.load`` of the second (reading the external data back) and the
``onnx.infer`` metadata. On MiniLM that is ~300 ms of a ~550 ms dynamic quantization, for 90 MB of
weights that shape inference never reads (it cannot: they are external).

:func:`reload_with_shape_infer` gives the same ``ModelProto``, byte for byte: the same initializers
(chosen by onnx's own rule) are marked external and left out of a light copy, which goes through the
same shape inference (same options) in memory; the weights are then put back into the inferred model as
``onnx.load`` puts them back (``raw_data`` set, ``data_location`` DEFAULT, no ``external_data``).
~100 ms on MiniLM. ``tests/unit/test_quant_infer.py`` compares it with onnxruntime's function;
``tests/integration/test_shared_preprocess.py`` compares whole quantized models with ``quantize_dynamic``.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from typing import Any

import onnx

#: onnx.save_model's default ``size_threshold`` (what onnxruntime's round trip uses).
_EXTERNAL_THRESHOLD = 1024
#: Above this the light model cannot go through in-memory shape inference (protobuf's limit).
_MAX_PROTOBUF_BYTES = (1 << 31) - 1
_PATCH_LOCK = threading.Lock()


def reload_with_shape_infer(model: onnx.ModelProto) -> onnx.ModelProto:
    """What ``onnxruntime.quantization.quant_utils.save_and_reload_model_with_shape_infer(model)`` returns
    (``model`` itself is left as it was)."""
    from onnx import TensorProto
    from onnx.external_data_helper import (
        _get_all_tensors,
        _get_initializer_tensors,
        set_external_data,
        uses_external_data,
    )
    from onnxruntime.quantization.quant_utils import (
        add_infer_metadata,
        save_and_reload_model_with_shape_infer,
    )

    # onnx.save_model(save_as_external_data=True)'s choice: initializers (not attribute tensors) with
    # raw_data whose sys.getsizeof reaches the threshold.
    moved = [
        t
        for t in _get_initializer_tensors(model)
        if t.HasField("raw_data") and sys.getsizeof(t.raw_data) >= _EXTERNAL_THRESHOLD
    ]
    kept: list[tuple[bytes, bool, Any, list[tuple[str, str]]]] = []
    try:
        for tensor in moved:
            kept.append(
                (
                    tensor.raw_data,
                    tensor.HasField("data_location"),
                    tensor.data_location,
                    [(e.key, e.value) for e in tensor.external_data],
                )
            )
            set_external_data(tensor, "weights.data", 0, len(kept[-1][0]))
            tensor.ClearField("raw_data")
        light = model.SerializeToString()
    finally:  # the caller's model as it was, whatever happened
        for tensor, (raw, had_location, location, entries) in zip(moved, kept, strict=False):
            tensor.raw_data = raw
            del tensor.external_data[:]
            for key, value in entries:
                tensor.external_data.add(key=key, value=value)
            if had_location:
                tensor.data_location = location
            else:
                tensor.ClearField("data_location")
    if len(light) > _MAX_PROTOBUF_BYTES:
        return save_and_reload_model_with_shape_infer(model)
    inferred = onnx.shape_inference.infer_shapes(light)
    external = [t for t in _get_all_tensors(inferred) if uses_external_data(t)]
    if [t.name for t in external] != [t.name for t in moved]:  # not what onnx would reload: its own way
        return save_and_reload_model_with_shape_infer(model)
    for loaded, state in zip(external, kept, strict=True):  # as onnx.load reads external data back
        loaded.raw_data = state[0]
        loaded.data_location = TensorProto.DEFAULT
        del loaded.external_data[:]
    add_infer_metadata(inferred)
    return inferred


@contextlib.contextmanager
def in_memory_shape_inference() -> Iterator[None]:
    """Meanwhile onnxruntime's ``ONNXQuantizer`` takes :func:`reload_with_shape_infer` for its
    round trip (one quantizer at a time in the process under this)."""
    from onnxruntime.quantization import onnx_quantizer

    with _PATCH_LOCK:
        original = onnx_quantizer.save_and_reload_model_with_shape_infer
        onnx_quantizer.save_and_reload_model_with_shape_infer = reload_with_shape_infer
        try:
            yield
        finally:
            onnx_quantizer.save_and_reload_model_with_shape_infer = original
