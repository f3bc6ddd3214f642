"""Attention surgeons of ``GraphSurgeries`` for onnxruntime-genai style LLM graphs (Olive's names).

- ``RemoveRopeMultiCache(use_large_cache=False)``: the ``If`` that picks the short or the long rotary
  cos/sin caches by sequence length -> one pair of cache initializers (the short ones by default).
- ``AttentionMaskToSequenceLengths``: the ``attention_mask`` subgraph that feeds ``GroupQueryAttention``'s
  ``seqlens_k`` and ``total_sequence_length`` -> two int32 graph inputs ``past_seq_len`` (``[batch, 1]``)
  and ``total_seq_len`` (scalar), as Olive names them; ``attention_mask`` goes.
- ``PackedAttentionToLoopMHA``: ``custom.PackedAttention(q, k, v, cu_seqlens; scale, num_heads)`` (Olive's
  custom op, ``q/k/v`` as ``[B, heads, S, head_dim]``) -> a ``Loop`` over the packed segments calling
  ``com.microsoft.MultiHeadAttention`` (which has a CPU kernel); output ``[B, S, heads, head_dim]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from olivine.passes.surgeons import Surgeon, drop_dead

if TYPE_CHECKING:
    import onnx_ir as ir

#: (op_type, index of cos_cache, index of sin_cache) of the operators that read rotary caches.
_CACHE_READERS = {"GroupQueryAttention": (7, 8), "RotaryEmbedding": (2, 3)}


class RemoveRopeMultiCache(Surgeon):
    """Replace the ``If``-selected rotary caches with the short (or, with ``use_large_cache``, the long)
    ones as initializers ``cos_cache_single`` / ``sin_cache_single``. The cache is found by Olive's value
    names (``cos_cache_small`` / ``cos_cache_large``...) in the ``If``'s branches, else by the branch
    (``then`` = long, the model builder's ``Greater(seq_len, original_max)`` condition). A model whose
    caches are not ``If`` outputs is left as it is."""

    use_large_cache: bool = False

    def apply(self, model: ir.Model) -> ir.Model:
        import onnx_ir as ir

        graph = model.graph
        reader = next((n for n in graph if n.op_type in _CACHE_READERS), None)
        if reader is None:
            return model
        indices = _CACHE_READERS[reader.op_type]
        if len(reader.inputs) <= max(indices):
            return model
        caches: dict[str, Any] = {
            key: reader.inputs[i] for key, i in zip(("cos_cache", "sin_cache"), indices, strict=True)
        }
        producers = {v.producer() if v is not None else None for v in caches.values()}
        if len(producers) != 1 or (if_node := producers.pop()) is None or if_node.op_type != "If":
            return model
        branch = if_node.attributes["then_branch" if self.use_large_cache else "else_branch"].as_graph()
        size = "large" if self.use_large_cache else "small"
        for key, value in caches.items():
            source = _find_value(branch, f"{key}_{size}") or branch.outputs[value.index()]
            tensor = _constant_behind(source)
            if tensor is None:
                raise ValueError(f"the {size} {key} in the If's branch is not a constant")
            name = f"{key}_single"
            single = ir.Value(
                name=name,
                const_value=ir.tensor(tensor.numpy().copy(), name=name),
                type=ir.TensorType(tensor.dtype),
                shape=ir.Shape(list(tensor.numpy().shape)),
            )
            graph.register_initializer(single)
            value.replace_all_uses_with(single, replace_graph_outputs=True)
        if all(next(iter(o.uses()), None) is None and not o.is_graph_output() for o in if_node.outputs):
            condition = if_node.inputs[0]
            graph.remove(if_node, safe=True)
            _drop_initializers_only_read_by(if_node, model)
            producer = condition.producer() if condition is not None else None
            if (
                producer is not None
                and producer.op_type == "Greater"
                and next(iter(condition.uses()), None) is None
            ):
                graph.remove(producer, safe=True)
        return model


def _drop_initializers_only_read_by(removed: Any, model: ir.Model) -> None:
    """Drop the main graph's initializers that only the subgraphs of the ``removed`` node read (the cache
    a branch passed on): nothing live reads them any more. One that is also a graph input or output stays."""
    import onnx_ir as ir

    from olivine.passes.surgeons import ir_graphs

    branches = [a.value for a in removed.attributes.values() if a.type == ir.AttributeType.GRAPH]
    dead = {id(n) for branch in branches for g in ir_graphs(branch) for n in g}
    graph = model.graph
    for name, value in list(graph.initializers.items()):
        readers = [use.node for use in value.uses()]
        if readers and all(id(r) in dead for r in readers) and value not in (*graph.inputs, *graph.outputs):
            del graph.initializers[name]


def _constant_behind(value: Any) -> Any:
    """The constant tensor ``value`` is, through any ``Identity`` nodes (a branch may pass on an
    initializer of the main graph, as optimizers that lift constants out of subgraphs leave it), else None."""
    import onnx_ir as ir

    for _ in range(64):  # a chain of Identities ends; a malformed cycle must not spin
        tensor = ir.convenience.get_const_tensor(value)
        producer = value.producer()
        if tensor is not None or producer is None or producer.op_type != "Identity" or not producer.inputs:
            return tensor
        value = producer.inputs[0]
        if value is None:
            return None
    return None


def _find_value(graph: Any, name: str) -> Any:
    """A value named ``name`` in ``graph`` or its subgraphs (initializers, node outputs), else None."""
    import onnx_ir as ir

    if name in graph.initializers:
        return graph.initializers[name]
    for node in graph:
        for value in node.outputs:
            if value.name == name:
                return value
        for attr in node.attributes.values():
            subgraphs = (
                [attr.value]
                if attr.type == ir.AttributeType.GRAPH
                else list(attr.value)
                if attr.type == ir.AttributeType.GRAPHS
                else []
            )
            for sub in subgraphs:
                if (found := _find_value(sub, name)) is not None:
                    return found
    return None


class AttentionMaskToSequenceLengths(Surgeon):
    """``GroupQueryAttention``'s ``seqlens_k`` (input 5) and ``total_sequence_length`` (input 6) become
    the int32 graph inputs ``past_seq_len`` ``[batch, 1]`` and ``total_seq_len`` (scalar), and the nodes
    computing them from ``attention_mask`` go with that input. Refused (ValueError) when the mask also
    feeds anything else; unchanged when there is no GQA or the lengths are graph inputs already."""

    def apply(self, model: ir.Model) -> ir.Model:
        import onnx_ir as ir

        graph = model.graph
        gqa = next((n for n in graph if n.op_type == "GroupQueryAttention"), None)
        if gqa is None or len(gqa.inputs) < 7:
            return model
        lengths: dict[str, Any] = {"past_seq_len": gqa.inputs[5], "total_seq_len": gqa.inputs[6]}
        if any(v is None or v.is_graph_input() for v in lengths.values()):
            return model
        mask = next((v for v in graph.inputs if v.name == "attention_mask"), None)
        if mask is None:
            raise ValueError("no graph input 'attention_mask' to replace")
        doomed = self._mask_nodes(mask)
        ids = next((v for v in graph.inputs if v.name == "input_ids"), None)
        batch: Any = (
            ids.shape[0] if ids is not None and ids.shape is not None and ids.shape.rank() else "batch_size"
        )
        shapes = {"past_seq_len": [batch, 1], "total_seq_len": []}
        for key, value in lengths.items():  # appended after the other inputs, as Olive adds them
            new = ir.Value(name=key, type=ir.TensorType(ir.DataType.INT32), shape=ir.Shape(shapes[key]))
            graph.inputs.append(new)
            value.replace_all_uses_with(new)
        for node in reversed(doomed):
            graph.remove(node, safe=True)
        graph.inputs.remove(mask)
        drop_dead(model)  # the constants only the mask's nodes read
        return model

    @staticmethod
    def _mask_nodes(mask: Any) -> list[Any]:
        """Every node downstream of the mask up to GQA's length inputs, in visiting order."""
        seen: dict[Any, None] = {}
        stack = [use.node for use in mask.uses()]
        while stack:
            node = stack.pop(0)
            if node in seen:
                continue
            seen[node] = None
            for out in node.outputs:
                if out.is_graph_output():
                    raise ValueError(
                        f"attention_mask reaches the graph output '{out.name}' through '{node.name}'"
                    )
                for use in out.uses():
                    if use.node.op_type == "GroupQueryAttention":
                        if use.idx not in (5, 6):
                            raise ValueError(
                                f"attention_mask reaches input {use.idx} of GroupQueryAttention "
                                f"'{use.node.name}' (only seqlens_k and total_sequence_length are replaced)"
                            )
                        continue
                    stack.append(use.node)
        return list(seen)


class PackedAttentionToLoopMHA(Surgeon):
    """Expand Olive's ``custom.PackedAttention`` nodes into a ``Loop`` of ``MultiHeadAttention`` calls,
    one per packed segment ``cu_seqlens[i]:cu_seqlens[i+1]`` (see the module docstring)."""

    def apply(self, model: ir.Model) -> ir.Model:
        import onnx_ir as ir
        from onnx_ir.passes.common import InlinePass, RemoveUnusedOpsetsPass

        if len(model.functions):
            raise ValueError(
                "the model already has model-local functions (PackedAttentionToLoopMHA adds its own)"
            )
        function = ir.from_proto(_packed_attention(model.opset_imports.get("", 20)).to_function_proto())
        model.functions[function.identifier()] = function
        model.opset_imports.setdefault("com.microsoft", 1)
        InlinePass()(model)
        RemoveUnusedOpsetsPass()(model)
        return model


def _packed_attention(opset_version: int) -> Any:
    import onnx
    import onnxscript
    from onnxscript import values

    custom = values.Opset("custom", 1)
    op = values.Opset("", opset_version)
    msft = values.Opset("com.microsoft", 1)

    @onnxscript.script(opset=custom)
    def PackedAttention(  # type: ignore[no-untyped-def]
        query_states, key_states, value_states, cu_seqlens, scale: float, num_heads: int
    ):
        # [B, heads, S, head_dim] -> [B, S, heads * head_dim], the layout MultiHeadAttention takes.
        merged = op.Constant(value_ints=[0, 0, -1])
        q_bshd = op.Transpose(query_states, perm=[0, 2, 1, 3])
        q = op.Reshape(q_bshd, merged)
        k = op.Reshape(op.Transpose(key_states, perm=[0, 2, 1, 3]), merged)
        v = op.Reshape(op.Transpose(value_states, perm=[0, 2, 1, 3]), merged)
        bounds = op.Cast(cu_seqlens, to=onnx.TensorProto.INT64)
        seq_axis = op.Constant(value_ints=[1])
        out = op.Slice(v, op.Constant(value_ints=[0]), op.Constant(value_ints=[0]), seq_axis)
        for i in range(op.Size(bounds) - 1):
            first = op.Reshape(i, op.Constant(value_ints=[1]))
            start = op.Gather(bounds, first, axis=0)
            end = op.Gather(bounds, first + 1, axis=0)
            segment = msft.MultiHeadAttention(
                op.Slice(q, start, end, seq_axis),
                op.Slice(k, start, end, seq_axis),
                op.Slice(v, start, end, seq_axis),
                num_heads=num_heads,
                scale=scale,
            )
            out = op.Concat(out, segment, axis=1)
        return op.Reshape(out, op.Shape(q_bshd))

    return PackedAttention
