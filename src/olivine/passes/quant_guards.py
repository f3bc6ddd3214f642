"""Guards of static quantization: the nodes it leaves in float whatever the config selects (found in one
read of the graph), and the check that every scale it wrote is usable.

- Block-quantized nodes (``MatMulNBits``, ``GatherBlockQuantized``, e.g. after ``ModelBuilder`` int4):
  quantizing their float scales again gave a model whose every such output was 0.
- Float arithmetic whose result is cast to an integer or a boolean: an index, a position, a bucket or a
  shape computed in float. MPNet, T5 and DeBERTa compute relative-position buckets this way (``Abs`` ->
  ``Cast`` to float -> ``Div`` -> ``Log`` -> ``Mul`` -> ``Cast`` to int64 -> ``Gather``). Quantized, those
  values are rounded to 256 levels before they become integers; the indices came out of range and every
  run of the model failed ("indices element out of data bounds"). Olive hands the graph to the same
  quantizer and leaves out only the nodes its config names. Only tensors whose float type is known
  (declared, or inferred by ONNX's shape inference) are followed back, so the main network is never
  reached through an untyped tensor.

onnxruntime computes a scale and zero point for every calibrated tensor, used or not; a tensor whose
range is not finite (the ``-inf`` of ``Log(0)`` above) gets NaN ones. :func:`check_scales` refuses an
output in which such a scale is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from olivine.errors import PassRunError
from olivine.passes.base import PassContext

#: Operators whose weights are already block-quantized (int4/int8 ``MatMulNBits``, ``GatherBlockQuantized``).
BLOCK_QUANTIZED = ("MatMulNBits", "GatherBlockQuantized")


def kept_in_float(source: Path, ctx: PassContext, *, qoperator: bool = False) -> list[str]:
    """The names of the nodes of ``source`` that static quantization must leave out (logged, by kind);
    ``qoperator``: also the nodes that feed a ``Where`` (:func:`where_feeders`)."""
    import onnx

    model = onnx.load(str(source), load_external_data=False)
    graph = model.graph
    blocks = [n for n in graph.node if n.op_type in BLOCK_QUANTIZED]
    unnamed = [n for n in blocks if not n.name]
    if unnamed:
        raise PassRunError(
            "OnnxStaticQuantization",
            f"{len(unnamed)} {unnamed[0].op_type} nodes have no name, so static quantization cannot leave "
            "them out; their block-quantized weights must not be quantized again",
        )
    if blocks:
        ctx.logger.info(
            "%d block-quantized nodes (%s) are left as they are", len(blocks), ", ".join(BLOCK_QUANTIZED)
        )
    discrete = integer_paths(model, ctx)
    feeders = where_feeders(graph, ctx) if qoperator else []
    return [n.name for n in blocks] + discrete + [n for n in feeders if n not in discrete]


def where_feeders(graph: Any, ctx: PassContext) -> list[str]:
    """The nodes whose outputs a ``Where`` selects from, for the QOperator format.

    onnxruntime's QOperator ``Where`` handler keeps the float ``Where`` (unless ``ForceQuantizeNoInputCheck``)
    without dequantizing inputs that were quantized before it, and then refuses its own graph ("Invalid
    model with unknown initializers/tensors"): DeBERTa's attention masking (``masked_fill``) failed this way,
    v1 and v2. Left in float, those inputs reach the ``Where`` as they are.
    """
    producers = {out: node for node in graph.node for out in node.output if out}
    names = sorted(
        {
            producers[name].name
            for node in graph.node
            if node.op_type == "Where"
            for name in node.input[1:]
            if name in producers and producers[name].op_type != "Constant" and producers[name].name
        }
    )
    if names:
        ctx.logger.info(
            "%d nodes that feed a Where are left in float: onnxruntime's QOperator Where does not take "
            "their quantized outputs",
            len(names),
        )
    return names


def integer_paths(model: Any, ctx: PassContext) -> list[str]:
    """The nodes (names) of float arithmetic that ends in a ``Cast`` to an integer or boolean type."""
    import onnx

    graph = model.graph
    types = _tensor_types(model, ctx)
    floats = {
        onnx.TensorProto.FLOAT,
        onnx.TensorProto.FLOAT16,
        onnx.TensorProto.BFLOAT16,
        onnx.TensorProto.DOUBLE,
    }
    nodes_by_index = list(graph.node)
    producers = {out: i for i, node in enumerate(nodes_by_index) for out in node.output if out}
    found: set[int] = set()
    stack = [
        i
        for i, n in enumerate(nodes_by_index)
        if _casts_to_discrete(n) and n.input and types.get(n.input[0]) in floats
    ]
    while stack:
        index = stack.pop()
        if index in found:
            continue
        found.add(index)
        stack.extend(
            producers[name]
            for name in nodes_by_index[index].input
            if name in producers and types.get(name) in floats
        )
    nodes = [nodes_by_index[i] for i in sorted(found) if nodes_by_index[i].op_type != "Constant"]
    if not nodes:
        return []
    names = [n.name for n in nodes if n.name]
    example = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    ctx.logger.info(
        "%d nodes compute integer values (indices, positions, buckets, shapes) in float and are left in "
        "float: quantized, their results are rounded before they become integers (%s)",
        len(names),
        example,
    )
    if len(names) < len(nodes):
        ctx.logger.warning(
            "%d of them have no name, so quantization cannot leave them out: name the model's nodes if the "
            "quantized model fails or drifts",
            len(nodes) - len(names),
        )
    return names


def _casts_to_discrete(node: Any) -> bool:
    import onnx

    if node.op_type != "Cast":
        return False
    to = next((a.i for a in node.attribute if a.name == "to"), None)
    return to in {
        onnx.TensorProto.BOOL,
        onnx.TensorProto.INT8,
        onnx.TensorProto.UINT8,
        onnx.TensorProto.INT16,
        onnx.TensorProto.UINT16,
        onnx.TensorProto.INT32,
        onnx.TensorProto.UINT32,
        onnx.TensorProto.INT64,
        onnx.TensorProto.UINT64,
    }


def _tensor_types(model: Any, ctx: PassContext) -> dict[str, int]:
    """Element types of the graph's tensors: declared ones, and those ONNX's shape inference infers
    (without the weights; a graph it cannot infer keeps the declared types only)."""
    import onnx

    graph = model.graph
    types: dict[str, int] = {i.name: i.data_type for i in graph.initializer}
    declared = [*graph.input, *graph.value_info, *graph.output]
    if any(_casts_to_discrete(n) for n in graph.node):
        try:
            inferred = onnx.shape_inference.infer_shapes(_without_weights(model), strict_mode=False).graph
            declared += [*inferred.input, *inferred.value_info, *inferred.output]
        except Exception as exc:  # an inference failure only narrows what is found
            ctx.logger.debug("shape inference for the integer paths failed: %s", exc)
    for value in declared:
        elem = value.type.tensor_type.elem_type
        if elem:
            types.setdefault(value.name, elem)
    return types


def _without_weights(model: Any) -> Any:
    """``model``'s graph with each initializer as a typed input instead: type inference needs no weights,
    and serializing them for onnx's inference took seconds on MiniLM (91 MB)."""
    import onnx

    graph = model.graph
    named = {i.name for i in graph.input}
    weights = [
        onnx.helper.make_tensor_value_info(i.name, i.data_type, list(i.dims))
        for i in graph.initializer
        if i.name not in named
    ]
    light = onnx.helper.make_graph(
        list(graph.node),
        graph.name,
        [*graph.input, *weights],
        list(graph.output),
        value_info=list(graph.value_info),
    )
    return onnx.helper.make_model(light, opset_imports=list(model.opset_import), ir_version=model.ir_version)


#: Operators that read a scale as their second input.
_SCALED = ("QuantizeLinear", "DequantizeLinear")


def check_scales(output: Path) -> None:
    """Raise :class:`PassRunError` if a ``QuantizeLinear`` / ``DequantizeLinear`` of ``output`` has a scale
    that is not finite or not positive (scales stored outside the ONNX file are not read)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(output), load_external_data=False).graph
    inits = {i.name: i for i in graph.initializer if i.data_location != onnx.TensorProto.EXTERNAL}
    for node in graph.node:
        if node.op_type not in _SCALED or len(node.input) < 2 or node.input[1] not in inits:
            continue
        scale = numpy_helper.to_array(inits[node.input[1]]).astype(np.float64)
        if scale.size and not (np.isfinite(scale).all() and (scale > 0).all()):
            raise PassRunError(
                "OnnxStaticQuantization",
                f"the scale of '{node.input[0]}' (node '{node.name}') is {scale.ravel()[0]}: its calibrated "
                "range is not finite; leave the node that computes it out with nodes_to_exclude",
            )
