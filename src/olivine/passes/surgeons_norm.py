"""Normalization and rotary-embedding surgeons of ``GraphSurgeries`` (Olive's names and parameters).

- ``RMSNormToL2Norm``: the standard-operator RMSNorm ``x / Sqrt(ReduceMean(x^2) + eps) * w`` (or
  ``x * (1 / Sqrt(...)) * w``) -> ``LpNormalization(x, p=2) * (w * sqrt(N))``.
- ``SimplifiedLayerNormToL2Norm``: ``(Skip)SimplifiedLayerNormalization`` -> ``(Add ->)
  LpNormalization * (gamma * sqrt(N))``.
- ``DecomposeRotaryEmbedding``: ``com.microsoft.RotaryEmbedding`` -> standard operators (Gather of the
  cos/sin caches by position, rotate-half or interleaved, partial rotary dim, 3-D or 4-D input).

``||x||_2 = sqrt(N * mean(x^2))``, so the L2 forms equal RMSNorm up to its epsilon (the L2 forms have none).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from olivine.passes.surgeons import Surgeon, _Builder, drop_dead

if TYPE_CHECKING:
    import onnx_ir as ir


def _consumers(value: Any) -> list[Any]:
    return list(dict.fromkeys(use.node for use in value.uses()))


def _initializer(graph: Any, value: Any) -> bool:
    return value is not None and value.name in graph.initializers and value.const_value is not None


class _ScaledWeights:
    """``w * sqrt(N)`` as a new initializer per weight (a weight shared by several norms is scaled once,
    and any other user of the original weight keeps it). A weight of all ones becomes ``[sqrt(N)]``."""

    def __init__(self, graph: Any) -> None:
        self.graph = graph
        self.made: dict[str, Any] = {}

    def get(self, weight: Any) -> Any:
        import numpy as np
        import onnx_ir as ir

        if weight.name in self.made:
            return self.made[weight.name]
        array = weight.const_value.numpy()
        sqrt_n = np.sqrt(array.shape[-1]).astype(array.dtype)
        scaled = sqrt_n * (np.ones([1], array.dtype) if np.all(array == 1) else array)
        name = f"{weight.name}_l2norm_scaled"
        tensor = ir.tensor(scaled.astype(array.dtype), name=name)
        value = ir.Value(
            name=name,
            const_value=tensor,
            type=ir.TensorType(tensor.dtype),
            shape=ir.Shape(list(scaled.shape)),
        )
        self.graph.register_initializer(value)
        self.made[weight.name] = value
        return value

    def drop_unused(self) -> None:
        for name in self.made:
            value = self.graph.initializers.get(name)
            if value is not None and next(iter(value.uses()), None) is None and not value.is_graph_output():
                del self.graph.initializers[name]


def _l2norm(graph: Any, source: Any, name: str, like: Any) -> Any:
    import onnx_ir as ir

    node = ir.Node(
        "",
        "LpNormalization",
        inputs=[source],
        attributes=[ir.AttrInt64("axis", -1), ir.AttrInt64("p", 2)],
        name=name,
    )
    node.outputs[0].name = f"{name}_output_0"
    node.outputs[0].type, node.outputs[0].shape = like.type, like.shape
    graph.append(node)
    return node.outputs[0]


def _sort(model: Any) -> None:
    from onnx_ir.passes.common import TopologicalSortPass

    TopologicalSortPass()(model)


class RMSNormToL2Norm(Surgeon):
    """``Pow(x, 2) -> ReduceMean -> Add -> Sqrt -> Div(x, .)`` (or ``Div(1, .) -> Mul(x, .)``), whose only
    consumer is the weight ``Mul`` (directly or through one ``Cast``), becomes ``LpNormalization(x)``
    feeding that ``Mul`` with the weight times ``sqrt(N)``. A weight that is not an initializer, or a
    chain with other consumers, is left as it is."""

    _CHAIN = ("ReduceMean", "Add", "Sqrt", "Div", "Mul")

    def apply(self, model: ir.Model) -> ir.Model:
        graph = model.graph
        weights = _ScaledWeights(graph)
        changed = 0
        for node in list(graph):
            if node.op_type != "Pow" or node.graph is None:
                continue
            chain = self._chain(node)
            if chain is None:
                continue
            mul, weight_index = self._weight_mul(graph, chain[-1].outputs[0])
            if mul is None:
                continue
            norm = _l2norm(graph, node.inputs[0], f"{node.name or 'rmsnorm'}_L2Norm", chain[-1].outputs[0])
            consumer = _consumers(chain[-1].outputs[0])[0]
            consumer.replace_input_with(list(consumer.inputs).index(chain[-1].outputs[0]), norm)
            mul.replace_input_with(weight_index, weights.get(mul.inputs[weight_index]))
            for dead in reversed(chain):
                graph.remove(dead, safe=True)
            changed += 1
        if changed:
            weights.drop_unused()
            _drop_unused_constants(graph)
            drop_dead(model)  # the chains' own constants (epsilon, exponent) as initializers
            _sort(model)
        return model

    def _chain(self, pow_node: Any) -> list[Any] | None:
        x = pow_node.inputs[0]
        exponent = pow_node.inputs[1]
        if exponent is None or exponent.const_value is None:
            return None
        if exponent.const_value.numpy().size != 1 or float(exponent.const_value.numpy().ravel()[0]) != 2.0:
            return None
        chain, current = [pow_node], pow_node
        for op_type in self._CHAIN:
            consumers = _consumers(current.outputs[0])
            if len(consumers) != 1 or consumers[0].op_type != op_type or current.outputs[0].is_graph_output():
                return None
            current = consumers[0]
            chain.append(current)
            if x in current.inputs:
                break
        ends_with_div = chain[-1].op_type == "Div" and chain[-1].inputs[0] is x
        ends_with_mul = chain[-1].op_type == "Mul" and len(chain) == 6
        return chain if ends_with_div or ends_with_mul else None

    @staticmethod
    def _weight_mul(graph: Any, out: Any) -> tuple[Any, int]:
        consumers = _consumers(out)
        if len(consumers) != 1 or out.is_graph_output():
            return None, -1
        node = consumers[0]
        if node.op_type == "Cast":
            after = _consumers(node.outputs[0])
            if len(after) != 1 or node.outputs[0].is_graph_output():
                return None, -1
            node = after[0]
        if node.op_type != "Mul":
            return None, -1
        index = next((i for i, v in enumerate(node.inputs) if _initializer(graph, v)), -1)
        return (node, index) if index >= 0 else (None, -1)


def _drop_unused_constants(graph: Any) -> None:
    for node in list(graph):
        if node.op_type == "Constant" and not any(
            next(iter(o.uses()), None) is not None or o.is_graph_output() for o in node.outputs
        ):
            graph.remove(node, safe=True)


class SimplifiedLayerNormToL2Norm(Surgeon):
    """``SimplifiedLayerNormalization(x, gamma)`` -> ``LpNormalization(x) * (gamma * sqrt(N))``; the
    ``SkipSimplifiedLayerNormalization(x, skip, gamma)`` form adds ``x + skip`` first, and that sum replaces
    its ``input_skip_bias_sum`` output. A node with a bias input, a used mean / inv-std-var output, a gamma
    that is not an initializer or a normalized axis other than the last is left as it is."""

    def apply(self, model: ir.Model) -> ir.Model:
        graph = model.graph
        weights = _ScaledWeights(graph)
        changed = 0
        for node in list(graph):
            skip = node.op_type == "SkipSimplifiedLayerNormalization"
            if not skip and node.op_type != "SimplifiedLayerNormalization":
                continue
            if not self._fits(graph, node, skip):
                continue
            build = _Builder(graph, node.name or str(node.outputs[0].name))
            inputs = list(node.inputs)
            source = build.node("Add", inputs[:2]) if skip else inputs[0]
            out = node.outputs[0]
            norm = _l2norm(graph, source, f"{build.prefix}_L2Norm", out)
            y = build.node("Mul", [norm, weights.get(inputs[-1])])
            pairs = [(out, y)]
            if skip and len(node.outputs) > 3 and node.outputs[3].name:
                pairs.append((node.outputs[3], source))
            _take_over(graph, node, pairs)
            changed += 1
        if changed:
            weights.drop_unused()
            _sort(model)
        return model

    @staticmethod
    def _fits(graph: Any, node: Any, skip: bool) -> bool:
        inputs = list(node.inputs)
        if len(inputs) != (3 if skip else 2) or any(v is None for v in inputs):
            return False
        if not _initializer(graph, inputs[-1]):
            return False
        side = node.outputs[1:3]  # mean and inv_std_var (only for training graphs)
        if any(next(iter(v.uses()), None) is not None or v.is_graph_output() for v in side):
            return False
        axis = node.attributes.get("axis")
        rank = inputs[0].shape.rank() if inputs[0].shape is not None else None
        return axis is None or axis.as_int() == -1 or (rank is not None and axis.as_int() == rank - 1)


def _take_over(graph: Any, node: Any, pairs: list[tuple[Any, Any]]) -> None:
    """The new values replace the node's outputs (names, types, shapes and graph outputs); the node goes."""
    for old, new in pairs:
        new.type, new.shape = old.type, old.shape
        old.replace_all_uses_with(new, replace_graph_outputs=True)
    names = [old.name for old, _ in pairs]
    graph.remove(node, safe=True)
    for name, (_, new) in zip(names, pairs, strict=True):
        new.name = name


class DecomposeRotaryEmbedding(Surgeon):
    """``com.microsoft.RotaryEmbedding(x, position_ids, cos_cache, sin_cache)`` -> standard operators.

    Follows onnxruntime's kernel: ``x`` is ``(B, S, hidden)`` or ``(B, N, S, H)``; ``position_ids`` is
    ``(B, S)`` or a 1-element start offset; the caches are ``(max_pos, R/2)`` initializers; the first
    ``rotary_embedding_dim`` (default: all ``H``) channels of each head are rotated (halves, or even/odd
    pairs with ``interleaved``), the rest pass through. A node whose head size cannot be known statically
    is left as it is. (Olive's lowering assumes one head per reshape; this one handles any head count.)"""

    def apply(self, model: ir.Model) -> ir.Model:
        graph = model.graph
        if graph.opset_imports.get("", 1) < 13:
            raise ValueError("DecomposeRotaryEmbedding needs the default-domain opset >= 13")
        changed = 0
        for node in list(graph):
            if node.op_type != "RotaryEmbedding" or node.domain != "com.microsoft":
                continue
            if self._decompose(graph, node):
                changed += 1
        if changed:
            _sort(model)
        return model

    def _decompose(self, graph: Any, node: Any) -> bool:
        import numpy as np

        x, position_ids, cos_cache, sin_cache = (list(node.inputs) + [None] * 4)[:4]
        if x is None or x.shape is None or cos_cache is None or sin_cache is None or position_ids is None:
            return False
        rank = x.shape.rank()
        cache_shape = cos_cache.shape
        if rank not in (3, 4) or cache_shape is None or not isinstance(cache_shape[-1], int):
            return False
        attrs = node.attributes
        interleaved = bool(attrs["interleaved"].as_int()) if "interleaved" in attrs else False
        num_heads = attrs["num_heads"].as_int() if "num_heads" in attrs else 0
        rotary_dim = attrs["rotary_embedding_dim"].as_int() if "rotary_embedding_dim" in attrs else 0
        half = cache_shape[-1]
        rot = 2 * half
        head = self._head_size(x, rank, num_heads, rotary_dim, rot)
        if head is None or position_ids.shape is None or position_ids.shape.rank() not in (1, 2):
            return False
        b = _Builder(graph, node.name or str(node.outputs[0].name))

        made: dict[str, Any] = {}

        def i64(name: str, *values: int) -> Any:
            if name not in made:
                made[name] = b.const(name, np.array(values, np.int64))
            return made[name]

        # (B, S, N, H) for a 3-D input; (B, N, S, H) as it is for a 4-D one.
        x4 = b.node("Reshape", [x, i64("heads_shape", 0, 0, -1, head)]) if rank == 3 else x
        seq_axis = 1 if rank == 3 else 2
        if position_ids.shape.rank() == 2:
            positions = position_ids
        else:  # a start offset: positions are offset + arange(S)
            seq = b.node("Gather", [b.node("Shape", [x4]), i64("seq_axis", seq_axis)])
            zero = b.const("zero", np.array(0, np.int64))
            one = b.const("one", np.array(1, np.int64))
            squeeze_axes = i64("squeeze_axes", 0)
            seq_scalar = b.node("Squeeze", [seq, squeeze_axes])
            start = b.node("Squeeze", [b.node("Cast", [position_ids], [_to_int64()]), squeeze_axes])
            positions = b.node("Add", [b.node("Range", [zero, seq_scalar, one]), start])
        cos = b.node("Gather", [cos_cache, positions], [_axis0()])
        sin = b.node("Gather", [sin_cache, positions], [_axis0()])
        # Broadcast the (B, S, R/2) or (S, R/2) tables against x4.
        if position_ids.shape.rank() == 2:
            unsq = i64("cache_axes", 2 if rank == 3 else 1)
            cos, sin = b.node("Unsqueeze", [cos, unsq]), b.node("Unsqueeze", [sin, unsq])
        elif rank == 3:
            unsq = i64("cache_axes", 1)
            cos, sin = b.node("Unsqueeze", [cos, unsq]), b.node("Unsqueeze", [sin, unsq])
        last = i64("last_axis", -1)

        def channels(value: Any, start: int, end: int, step: int = 1) -> Any:
            return b.node(
                "Slice", [value, i64(f"s{start}", start), i64(f"e{end}", end), last, i64(f"p{step}", step)]
            )

        x_rot = channels(x4, 0, rot) if rot < head else x4
        if interleaved:
            first, second = channels(x_rot, 0, rot, 2), channels(x_rot, 1, rot, 2)
        else:
            first, second = channels(x_rot, 0, half), channels(x_rot, half, rot)
        out1 = b.node("Sub", [b.node("Mul", [first, cos]), b.node("Mul", [second, sin])])
        out2 = b.node("Add", [b.node("Mul", [second, cos]), b.node("Mul", [first, sin])])
        if interleaved:  # back to even/odd order: stack on a new last axis and merge it
            stacked = b.node(
                "Concat", [b.node("Unsqueeze", [out1, last]), b.node("Unsqueeze", [out2, last])], [_axis(-1)]
            )
            rotated = b.node("Reshape", [stacked, b.node("Shape", [x_rot])])
        else:
            rotated = b.node("Concat", [out1, out2], [_axis(-1)])
        if rot < head:
            rotated = b.node("Concat", [rotated, channels(x4, rot, head)], [_axis(-1)])
        y = b.node("Reshape", [rotated, b.node("Shape", [x])]) if rank == 3 else rotated
        _take_over(graph, node, [(node.outputs[0], y)])
        return True

    @staticmethod
    def _head_size(x: Any, rank: int, num_heads: int, rotary_dim: int, rot: int) -> int | None:
        last = x.shape[-1]
        if rank == 4:
            return last if isinstance(last, int) else None
        if num_heads > 0:
            return last // num_heads if isinstance(last, int) else None
        return rot if rotary_dim == 0 else None


def _axis(value: int) -> Any:
    import onnx_ir as ir

    return ir.AttrInt64("axis", value)


def _axis0() -> Any:
    return _axis(0)


def _to_int64() -> Any:
    import onnx_ir as ir

    return ir.AttrInt64("to", int(ir.DataType.INT64))
