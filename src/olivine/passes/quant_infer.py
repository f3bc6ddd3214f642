"""onnxruntime's dynamic quantizer's shape-inference round trip, in memory, same result.

``ONNXQuantizer.__init__`` (dynamic mode) calls ``quant_utils.save_and_reload_model_with_shape_infer``
after it turns Gemm nodes into MatMul: a deep copy of the model, ``onnx.save_model`` with every
initializer of 1 KB or more in an external data file, ``onnx.shape_inference.infer_shapes_path`` on that
file into a second file, ``onnx.load`` of the second (reading the external data back) and the
``onnx.infer`` metadata. On MiniLM that is ~300 ms of a ~550 ms dynamic quantization, for 90 MB of
weights that shape inference never reads (it cannot: they are external).

:func:`reload_with_shape_infer` gives the same ``ModelProto``, byte for byte, without copying a weight:
a copy of the model without the initializers' ``raw_data`` that onnx would have written externally (chosen
by onnx's own rule, marked external as onnx marks them) goes through the same shape inference (same
options) in memory; the result, with those initializers as ``onnx.load`` leaves them (``data_location``
DEFAULT, no ``external_data``) and the metadata, is made in the model itself around its weights, and
checked: the model without those weights must serialize to exactly the inferred model's bytes (else the
model is put back and onnxruntime's function runs). ~30 ms on MiniLM. ``tests/unit/test_quant_infer.py``
compares it with onnxruntime's function; ``tests/integration/test_shared_preprocess.py`` compares whole
quantized models with ``quantize_dynamic``.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator

import onnx

#: onnx.save_model's default ``size_threshold`` (what onnxruntime's round trip uses).
_EXTERNAL_THRESHOLD = 1024
#: Above this the light model cannot go through in-memory shape inference (protobuf's limit).
_MAX_PROTOBUF_BYTES = (1 << 31) - 1
_PATCH_LOCK = threading.Lock()


def reload_with_shape_infer(model: onnx.ModelProto) -> onnx.ModelProto:
    """What ``onnxruntime.quantization.quant_utils.save_and_reload_model_with_shape_infer(model)`` returns,
    made from ``model`` itself (changed in place and returned: the quantizer replaces its model with the
    result) without copying a weight; onnxruntime's own function (``model`` left as it was) when the
    model has subgraphs or the result could differ."""
    from onnxruntime.quantization.quant_utils import (
        add_infer_metadata,
        save_and_reload_model_with_shape_infer,
    )

    graph = model.graph
    if any(a.HasField("g") or a.graphs for node in graph.node for a in node.attribute):
        return save_and_reload_model_with_shape_infer(model)  # initializers in subgraphs: not followed here
    # onnx.save_model(save_as_external_data=True)'s choice: initializers with raw_data whose
    # sys.getsizeof reaches the threshold.
    moved = {
        i
        for i, t in enumerate(graph.initializer)
        if t.HasField("raw_data") and sys.getsizeof(t.raw_data) >= _EXTERNAL_THRESHOLD
    }
    light = _without_weights(model, moved, external=True).SerializeToString()
    if len(light) > _MAX_PROTOBUF_BYTES:
        return save_and_reload_model_with_shape_infer(model)
    # What onnx.load of the inferred file gives, the moved weights aside: they are read back in place
    # (data_location DEFAULT, external_data cleared), then the quantizer's metadata.
    inferred = onnx.shape_inference.infer_shapes(light)
    if len(inferred.graph.initializer) != len(graph.initializer):
        return save_and_reload_model_with_shape_infer(model)
    for i in moved:
        tensor = inferred.graph.initializer[i]
        tensor.data_location = onnx.TensorProto.DEFAULT
        del tensor.external_data[:]
    add_infer_metadata(inferred)
    expected = inferred.SerializeToString()
    before = _without_weights(model, moved, external=False)
    _take(model, inferred, moved)
    if _without_weights(model, moved, external=False).SerializeToString() != expected:
        _take(model, before, moved)  # as it was, and onnxruntime's way
        return save_and_reload_model_with_shape_infer(model)
    return model


def _without_weights(model: onnx.ModelProto, moved: set[int], *, external: bool) -> onnx.ModelProto:
    """A copy of ``model`` whose initializers at the ``moved`` positions have no ``raw_data`` (marked as
    external data with ``external``, as onnx.save_model marks them), no weight copied."""
    from olivine.passes.onnx_wire import copy_fields

    light = copy_fields(model, onnx.ModelProto(), skip="graph")
    copy_fields(model.graph, light.graph, skip="initializer")
    for i, tensor in enumerate(model.graph.initializer):
        if i not in moved:
            light.graph.initializer.add().CopyFrom(tensor)
            continue
        copy = copy_fields(tensor, light.graph.initializer.add(), skip="raw_data")
        if external:
            del copy.external_data[:]
            copy.data_location = onnx.TensorProto.EXTERNAL
            copy.external_data.add(key="location", value="weights.data")
    return light


def _take(model: onnx.ModelProto, source: onnx.ModelProto, moved: set[int]) -> None:
    """Make ``model`` what ``source`` is (a model of the same initializers without the ``moved`` ones'
    raw_data), keeping those raw_data: every field is replaced but the moved initializers' weights."""
    from olivine.passes.onnx_wire import copy_fields

    for target, origin, skip in ((model, source, "graph"), (model.graph, source.graph, "initializer")):
        for field in target.DESCRIPTOR.fields:
            if field.name != skip:
                target.ClearField(field.name)
        copy_fields(origin, target, skip=skip)
    for i, (tensor, given) in enumerate(zip(model.graph.initializer, source.graph.initializer, strict=True)):
        if i not in moved:
            tensor.CopyFrom(given)
            continue
        for field in tensor.DESCRIPTOR.fields:
            if field.name != "raw_data":
                tensor.ClearField(field.name)
        copy_fields(given, tensor, skip="raw_data")


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
