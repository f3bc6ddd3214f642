"""Quantization-graph and debugging surgeons of ``GraphSurgeries`` that Olive keeps beside its NPU/DLA
transforms (olive/passes/onnx/dla_transforms.py) but that are plain ONNX edits any runtime loads:

- ``RemoveQDQ`` (``keep_clip_after_inputs``): every ``QuantizeLinear -> DequantizeLinear`` pair goes,
  its consumers read the pair's float input (a pair right after a graph input may become a ``Clip`` to
  the quantized range instead).
- ``QDQToClip``: every such pair becomes ``Clip`` to the range the quantized type can hold.
- ``RemoveDeqLin``: ``DequantizeLinear`` of a constant (quantized weights) becomes the float constant.
- ``RemoveAllTensorValueShapes``: intermediate values keep their element types and lose their shapes.
- ``AddIntermediateTensorsToOutputs`` (``intermediate_tensor_to_add``): intermediate tensors become graph
  outputs (all of them when no list is given).
- ``ExposeQuantizedOutput`` (``output_name``): a graph output computed by ``DequantizeLinear(Q(x))``
  is replaced by the quantized tensor, with its scale and zero point as two more outputs.

Where Olive's version assumes more than the graph says (unsigned 8/16-bit types, a per-tensor scale, a
uint8 output, float outputs), these read the types and axes from the model; a pair they cannot express
(a per-channel pair as one ``Clip``, block quantization) is an error naming the node.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from olivine.passes.surgeons import Surgeon, _infer_shapes, drop_dead

if TYPE_CHECKING:
    import onnx_ir as ir

_Q = "QuantizeLinear"
_DQ = "DequantizeLinear"
_DOMAINS = ("", "ai.onnx", "com.microsoft")


def _is(node: Any, op_type: str) -> bool:
    return node is not None and node.op_type == op_type and node.domain in _DOMAINS


def _pairs(graph: Any) -> list[tuple[Any, list[Any]]]:
    """``(Q, [DQ, ...])`` for each QuantizeLinear of ``graph`` whose output only DequantizeLinear nodes
    read (as their quantized input) and that is not a graph output."""
    found = []
    for node in graph:
        if not _is(node, _Q) or not node.outputs or node.outputs[0].is_graph_output():
            continue
        uses = list(node.outputs[0].uses())
        if uses and all(_is(use.node, _DQ) and use.idx == 0 for use in uses):
            found.append((node, list(dict.fromkeys(use.node for use in uses))))
    return found


def _constant(value: Any) -> Any:
    """The numpy array of a constant value (initializer or Constant node), or None."""
    if value is None:
        return None
    if value.const_value is not None:
        return value.const_value.numpy()
    producer = value.producer()
    if producer is not None and producer.op_type == "Constant" and "value" in producer.attributes:
        return producer.attributes["value"].value.numpy()
    return None


def _range(q: Any) -> tuple[Any, Any]:
    """The float range ``[(qmin - zp) * scale, (qmax - zp) * scale]`` a per-tensor Q node can hold."""
    import numpy as np

    scale = _constant(q.inputs[1] if len(q.inputs) > 1 else None)
    zero_point = _constant(q.inputs[2] if len(q.inputs) > 2 else None)
    if scale is None:
        raise ValueError(f"QuantizeLinear '{q.name}': its scale is not a constant")
    if scale.size != 1 or (zero_point is not None and zero_point.size != 1):
        raise ValueError(f"QuantizeLinear '{q.name}' is per-channel: one Clip cannot hold its range")
    dtype = zero_point.dtype if zero_point is not None else np.dtype(np.uint8)
    if not np.issubdtype(dtype, np.integer):
        raise ValueError(f"QuantizeLinear '{q.name}' quantizes to {dtype}, not an integer type")
    info = np.iinfo(dtype)
    zp = int(zero_point.ravel()[0]) if zero_point is not None else 0
    step = float(scale.ravel()[0])
    out = scale.dtype
    return np.array((info.min - zp) * step, dtype=out), np.array((info.max - zp) * step, dtype=out)


def _clip(graph: Any, q: Any, dq: Any) -> Any:
    """A ``Clip`` of ``q``'s input to its range, placed before ``dq``; returns its output value."""
    import onnx_ir as ir

    low, high = _range(q)
    made = []
    for suffix, array in (("clip_min", low), ("clip_max", high)):
        name = f"{dq.name or q.name}_{suffix}"
        tensor = ir.tensor(array, name=name)
        value = ir.Value(name=name, const_value=tensor, type=ir.TensorType(tensor.dtype), shape=ir.Shape([]))
        graph.register_initializer(value)
        made.append(value)
    node = ir.Node("", "Clip", inputs=[q.inputs[0], *made], name=f"{dq.name or q.name}_clip")
    dq.prepend(node)
    return node.outputs[0]


def _bypass(graph: Any, old: Any, new: Any) -> None:
    """``new`` replaces ``old`` for its consumers; a graph output keeps its name, type and shape (through
    an Identity when ``new`` is a graph input or initializer, whose own name must stay)."""
    import onnx_ir as ir

    if not old.is_graph_output():
        old.replace_all_uses_with(new)
        return
    name, dtype, shape = old.name, old.type, old.shape
    if new.is_graph_input() or new.is_initializer() or new.is_graph_output():
        identity = ir.Node("", "Identity", inputs=[new], name=f"{name}_identity")
        old.producer().prepend(identity)
        new = identity.outputs[0]
    old.replace_all_uses_with(new, replace_graph_outputs=True)
    old.name = None
    new.name, new.type, new.shape = name, new.type or dtype, new.shape or shape


def _sort(model: Any) -> None:
    from onnx_ir.passes.common import TopologicalSortPass

    TopologicalSortPass()(model)


class RemoveQDQ(Surgeon):
    keep_clip_after_inputs: bool = False

    def apply(self, model: ir.Model) -> ir.Model:
        def replacement(graph: Any, q: Any, dq: Any) -> Any:
            source = q.inputs[0]
            if self.keep_clip_after_inputs and source is not None and source.is_graph_input():
                return _clip(graph, q, dq)
            return source

        return _replace_pairs(model, replacement)


class QDQToClip(Surgeon):
    def apply(self, model: ir.Model) -> ir.Model:
        return _replace_pairs(model, _clip)


def _replace_pairs(model: ir.Model, replacement: Callable[[Any, Any, Any], Any]) -> ir.Model:
    """Each Q -> DQ pair of the main graph goes; each DQ's consumers read ``replacement(graph, q, dq)``."""
    graph = model.graph
    pairs = _pairs(graph)
    for q, dqs in pairs:
        for dq in dqs:
            _bypass(graph, dq.outputs[0], replacement(graph, q, dq))
            graph.remove(dq, safe=True)
        graph.remove(q, safe=True)
    if pairs:
        drop_dead(model)
        _sort(model)
    return model


class RemoveDeqLin(Surgeon):
    def apply(self, model: ir.Model) -> ir.Model:
        import onnx_ir as ir

        graph = model.graph
        changed = 0
        for node in list(graph):
            if not _is(node, _DQ) or _constant(node.inputs[0]) is None:
                continue
            array = _dequantized(node)
            quantized = node.inputs[0]
            name = f"{(quantized.name if quantized is not None else None) or node.name}_dequantized"
            while name in graph.initializers:
                name += "_"
            tensor = ir.tensor(array, name=name)
            value = ir.Value(
                name=name, const_value=tensor, type=ir.TensorType(tensor.dtype), shape=ir.Shape(array.shape)
            )
            graph.register_initializer(value)
            _bypass(graph, node.outputs[0], value)
            graph.remove(node, safe=True)
            changed += 1
        if changed:
            drop_dead(model)
            _sort(model)
        return model


def _dequantized(node: Any) -> Any:
    """``(x - zero_point) * scale`` of a DequantizeLinear of constants, along its ``axis``."""
    import numpy as np

    x = _constant(node.inputs[0])
    scale = _constant(node.inputs[1] if len(node.inputs) > 1 else None)
    zero_point = _constant(node.inputs[2] if len(node.inputs) > 2 else None)
    if scale is None:
        raise ValueError(f"DequantizeLinear '{node.name}': its scale is not a constant")
    block = node.attributes.get("block_size")
    if block is not None and block.as_int() > 0:
        raise ValueError(f"DequantizeLinear '{node.name}' is block-quantized (block_size), not supported")
    values = x.astype(np.float64) - (zero_point.astype(np.float64) if zero_point is not None else 0.0)
    if scale.size > 1 or (zero_point is not None and zero_point.size > 1):
        axis = node.attributes["axis"].as_int() if "axis" in node.attributes else 1
        shape = [1] * x.ndim
        shape[axis] = -1
        zp = zero_point.astype(np.float64).reshape(shape) if zero_point is not None else 0.0
        values = (x.astype(np.float64) - zp) * scale.astype(np.float64).reshape(shape)
    else:
        values = values * float(scale.ravel()[0])
    return values.astype(scale.dtype)


class RemoveAllTensorValueShapes(Surgeon):
    """The shape of every intermediate value of the main graph goes; element types stay (Olive clears the
    shapes of ``value_info``; graph inputs and outputs keep theirs)."""

    def apply(self, model: ir.Model) -> ir.Model:
        graph = model.graph
        values = [*graph.initializers.values(), *(v for node in graph for v in node.outputs)]
        for value in values:
            if not value.is_graph_output() and not value.is_graph_input():
                value.shape = None  # an initializer's tensor keeps its own dims
        return model


class AddIntermediateTensorsToOutputs(Surgeon):
    intermediate_tensor_to_add: list[str] | None = None

    def apply(self, model: ir.Model) -> ir.Model:
        graph = model.graph
        produced = {v.name: v for node in graph for v in node.outputs if v.name}
        wanted = self.intermediate_tensor_to_add
        if wanted is None:
            wanted = list(produced)
        missing = [name for name in wanted if name not in produced]
        if missing:
            raise ValueError(f"no node of the graph computes {missing}")
        values = [produced[n] for n in dict.fromkeys(wanted) if not produced[n].is_graph_output()]
        if any(v.type is None for v in values):
            model = _infer_shapes(model)  # a graph output must declare its type
        untyped = [v.name for v in values if v.type is None]
        if untyped:
            raise ValueError(f"the element type of {untyped} is unknown (shape inference cannot reach it)")
        model.graph.outputs.extend(values)
        return model


class ExposeQuantizedOutput(Surgeon):
    output_name: str

    def apply(self, model: ir.Model) -> ir.Model:
        import onnx_ir as ir

        graph = model.graph
        outputs = list(graph.outputs)
        index = next((i for i, v in enumerate(outputs) if v.name == self.output_name), None)
        if index is None:
            raise ValueError(f"no graph output '{self.output_name}' (outputs: {[v.name for v in outputs]})")
        dq = outputs[index].producer()
        if dq is None or not _is(dq, _DQ):
            raise ValueError(f"output '{self.output_name}' is not computed by a DequantizeLinear node")
        q = dq.inputs[0].producer() if dq.inputs[0] is not None else None
        if q is None or not _is(q, _Q):
            raise ValueError(f"the DequantizeLinear of '{self.output_name}' does not read a QuantizeLinear")
        scale = _constant(q.inputs[1] if len(q.inputs) > 1 else None)
        zero_point = _constant(q.inputs[2] if len(q.inputs) > 2 else None)
        if scale is None or zero_point is None:
            raise ValueError(f"QuantizeLinear '{q.name}': its scale and zero point must be constants")
        quantized = q.outputs[0]
        quantized.type = ir.TensorType(ir.DataType.from_numpy(zero_point.dtype))
        quantized.shape = quantized.shape or dq.outputs[0].shape
        exposed = [quantized]
        for suffix, array in (("scale", scale), ("zero_point", zero_point)):
            name = f"{self.output_name}_exposed_{suffix}"
            tensor = ir.tensor(array.reshape(-1)[:1].copy(), name=f"{name}_value")
            init = ir.Value(
                name=tensor.name, const_value=tensor, type=ir.TensorType(tensor.dtype), shape=ir.Shape([1])
            )
            graph.register_initializer(init)
            identity = ir.Node("", "Identity", inputs=[init], name=name)
            graph.append(identity)
            identity.outputs[0].name = f"{name}_output"
            identity.outputs[0].type, identity.outputs[0].shape = init.type, init.shape
            exposed.append(identity.outputs[0])
        graph.outputs.pop(index)
        graph.outputs.insert(index, quantized)
        graph.outputs.extend(exposed[1:])
        if next(iter(dq.outputs[0].uses()), None) is None:
            graph.remove(dq, safe=True)
        return model
