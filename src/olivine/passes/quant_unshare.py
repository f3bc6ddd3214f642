"""Small float constants that several nodes share get a copy per node before QOperator quantization.

onnxruntime's QOperator quantizer handles a node's float constant input as that node's own: it replaces
it with a quantized one (a ``Pad``'s ``constant_value``, a bias) and drops the float tensor, or keeps it
typed for the first node only (an int32 Conv bias that an ``Add`` then reads as int8). A constant several
nodes read then breaks the graph it writes: EfficientNet's depthwise ``Pad`` nodes share one fill value
after onnxruntime's pre-processing (its ``ConstantSharing`` merges equal scalars), and every QOperator run
failed with "Invalid model with unknown initializers/tensors". Each reader gets a copy; a constant of more
than :data:`MAX_COPIED` elements (a tied embedding) is left shared, which the quantizer handles for
weights.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from olivine.passes.base import PassContext

#: The largest shared constant copied per reader (a bias or a fill value, not a weight matrix).
MAX_COPIED = 1 << 16


def unshare_float_constants(source: Path, folder: Path, ctx: PassContext) -> Path:
    """``source``, or a copy of it in ``folder`` where each small shared float constant has one copy per
    reader (``<name>_olivine_copy<k>``)."""
    import onnx

    external_here = source.parent == folder  # tensors in files beside the model stay valid beside a copy
    model = onnx.load(str(source), load_external_data=False)
    copies = _unshare(model.graph)
    if not copies:
        return source
    target = folder / "unshared.onnx"
    if external_here:
        onnx.save(model, str(target))
    else:
        onnx.load_external_data_for_model(model, str(source.parent))
        onnx.save(model, str(target), save_as_external_data=True, location="unshared.onnx.data")
    ctx.logger.info(
        "%d float constants read by several nodes get a copy per node (%d copies): onnxruntime's QOperator "
        "quantizer takes a node's constant as its own",
        len(copies),
        sum(copies.values()),
    )
    return target


def _unshare(graph: Any) -> dict[str, int]:
    """Copy the graph's small shared float initializers per reader; the number of copies of each."""
    from onnx import TensorProto

    small = {
        t.name: t
        for t in graph.initializer
        if t.data_type in (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE)
        and _elements(t) <= MAX_COPIED
    }
    if not small:
        return {}
    outputs = {o.name for o in graph.output} | {i.name for i in graph.input}  # an input may override it
    seen: dict[str, int] = {}
    added = []
    for node in graph.node:
        for index, name in enumerate(node.input):
            if name not in small or name in outputs:
                continue
            seen[name] = seen.get(name, 0) + 1
            if seen[name] == 1:
                continue
            tensor = copy.deepcopy(small[name])
            tensor.name = f"{name}_olivine_copy{seen[name] - 1}"
            added.append(tensor)
            node.input[index] = tensor.name
    graph.initializer.extend(added)
    return {name: count - 1 for name, count in seen.items() if count > 1}


def _elements(tensor: Any) -> int:
    count = 1
    for dim in tensor.dims:
        count *= dim
    return count
