"""Embedding / LM-head surgeons of ``GraphSurgeries`` (Olive's names; none takes parameters).

- ``TieWordEmbeddings``: an LM head whose weight equals the (transposed) embedding table reads the table
  (``Gather`` + ``MatMul`` -> ``Gemm(transB=1)`` on the table; or ``GatherBlockQuantized`` + ``MatMulNBits``
  with equal quantized data, scales and zero points -> the head reads the embedding's tensors).
- ``QuantizeEmbeddingInt8``: the ``embed_tokens`` ``Gather`` of a float table -> ``GatherBlockQuantized``
  (8 bits, blocks of 32 along the hidden axis, zero point 128).
- ``ShareEmbeddingLmHead``: after ``QuantizeEmbeddingInt8``, the ``lm_head`` ``MatMulNBits`` becomes an
  8-bit ``MatMulNBits`` on the embedding's quantized table (one copy of the weights).

The model's inputs and outputs are found by Olive's names (``input_ids``, ``logits``) and node names
(``embed_tokens``, ``lm_head``), as onnxruntime-genai's model builder writes them; a model without them
is left as it is.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from olivine.passes.surgeons import Surgeon

if TYPE_CHECKING:
    import onnx_ir as ir

MSFT = "com.microsoft"
BLOCK = 32
logger = logging.getLogger(__name__)


def _const(value: Any) -> Any:
    return None if value is None or value.const_value is None else value.const_value.numpy()


def _new_initializer(graph: Any, name: str, array: Any) -> Any:
    import onnx_ir as ir

    tensor = ir.tensor(array, name=name)
    shape = ir.Shape(list(array.shape))
    value = ir.Value(name=name, const_value=tensor, type=ir.TensorType(tensor.dtype), shape=shape)
    graph.register_initializer(value)
    return value


def _node(graph: Any, op: str, inputs: list[Any], name: str, domain: str = "", **attrs: Any) -> Any:
    import onnx_ir as ir

    made = ir.node(op, inputs=inputs, attributes=attrs, domain=domain, name=name)
    made.outputs[0].name = f"{name}_output_0"
    graph.append(made)
    return made


def _drop_unused_initializers(graph: Any, values: list[Any]) -> None:
    for value in values:
        if (
            value is not None
            and graph.initializers.get(value.name) is value
            and next(iter(value.uses()), None) is None
            and not value.is_graph_output()
        ):
            del graph.initializers[value.name]


def _finish(model: Any) -> None:
    from onnx_ir.passes.common import RemoveUnusedNodesPass, TopologicalSortPass

    RemoveUnusedNodesPass()(model)
    TopologicalSortPass()(model)


def _msft_opset(model: Any) -> None:
    model.opset_imports[MSFT] = max(model.opset_imports.get(MSFT, 0), 1)


class TieWordEmbeddings(Surgeon):
    """The LM head reads the embedding table when their weights are equal (see the module docstring)."""

    def apply(self, model: ir.Model) -> ir.Model:
        graph = model.graph
        inputs = {v.name: v for v in graph.inputs}
        source = next(
            (inputs[n] for n in ("input_ids", "input_embeds", "inputs_embeds") if n in inputs), None
        )
        logits = next((v for v in graph.outputs if v.name == "logits"), None)
        if source is None or logits is None or logits.producer() is None:
            return model
        embed = next(
            (
                u.node
                for u in source.uses()
                if u.node.op_type in ("Gather", "GatherBlockQuantized")
                and _const(u.node.inputs[0]) is not None
            ),
            None,
        )
        head: Any = logits.producer()
        if embed is None or head.op_type not in ("MatMul", "MatMulNBits") or _const(head.inputs[1]) is None:
            return model
        pair = (embed.op_type, head.op_type)
        if pair == ("Gather", "MatMul"):
            self._tie_float(model, embed, head, logits)
        elif pair == ("GatherBlockQuantized", "MatMulNBits"):
            self._tie_quantized(model, embed, head)
        return model

    @staticmethod
    def _tie_float(model: Any, embed: Any, head: Any, logits: Any) -> None:
        import numpy as np

        graph = model.graph
        table, weight = embed.inputs[0], head.inputs[1]
        table_array, weight_array = _const(table), _const(weight)
        if table_array.ndim != 2 or table_array.T.shape != weight_array.shape:
            return
        if not np.array_equal(table_array.T, weight_array):
            return
        vocab, hidden = table_array.shape
        name = head.name or "lm_head"
        x = head.inputs[0]
        flat = _node(
            graph,
            "Reshape",
            [x, _new_initializer(graph, f"{name}_2d", np.array([-1, hidden], np.int64))],
            f"{name}_Reshape_pre",
        )
        gemm = _node(graph, "Gemm", [flat.outputs[0], table], f"{name}_Gemm", transB=1)
        lead = _node(
            graph,
            "Slice",
            [
                _node(graph, "Shape", [x], f"{name}_Shape").outputs[0],
                _new_initializer(graph, f"{name}_lead_start", np.array([0], np.int64)),
                _new_initializer(graph, f"{name}_lead_end", np.array([-1], np.int64)),
            ],
            f"{name}_Slice",
        )
        shape = _node(
            graph,
            "Concat",
            [lead.outputs[0], _new_initializer(graph, f"{name}_vocab", np.array([vocab], np.int64))],
            f"{name}_Concat",
            axis=0,
        )
        back = _node(graph, "Reshape", [gemm.outputs[0], shape.outputs[0]], f"{name}_Reshape_post").outputs[0]
        back.type, back.shape = logits.type, logits.shape
        logits.replace_all_uses_with(back, replace_graph_outputs=True)
        old_name = logits.name
        graph.remove(head, safe=True)
        back.name = old_name
        _drop_unused_initializers(graph, [weight])
        _finish(model)

    @staticmethod
    def _tie_quantized(model: Any, embed: Any, head: Any) -> None:
        import numpy as np

        graph = model.graph
        # (data, scales, zero points) of GatherBlockQuantized (data, indices, scales, zp) and MatMulNBits
        # (A, B, scales, zp): equal element by element (MatMulNBits holds the data as 3-D blocks).
        embed_parts = [embed.inputs[0], *list(embed.inputs)[2:4]]
        head_parts = list(head.inputs)[1:4]
        if len(embed_parts) != len(head_parts) or any(v is None for v in embed_parts + head_parts):
            return
        for mine, theirs in zip(embed_parts, head_parts, strict=True):
            a, b = _const(mine), _const(theirs)
            if a is None or b is None or a.size != b.size or not np.array_equal(a.ravel(), b.ravel()):
                return
        old = list(head_parts)
        for index, value in zip((2, 3), embed_parts[1:], strict=False):
            head.replace_input_with(index, value)
        weight = head_parts[0]
        name = head.name or "lm_head"
        shape = _new_initializer(graph, f"{name}_tied_shape", np.array(list(_const(weight).shape), np.int64))
        reshaped = _node(graph, "Reshape", [embed_parts[0], shape], f"{name}_Reshape_tied").outputs[0]
        head.replace_input_with(1, reshaped)
        _drop_unused_initializers(graph, old)
        _finish(model)


def _find(graph: Any, op: str, fragment: str) -> Any:
    return next((n for n in graph if n.op_type == op and fragment in (n.name or "")), None)


class QuantizeEmbeddingInt8(Surgeon):
    """The ``embed_tokens`` ``Gather`` on a float16/float32 table -> ``GatherBlockQuantized`` with 8-bit
    blocks of 32 along the hidden axis: ``scale = max|block| / 127``, stored as ``uint8`` with zero
    point 128; scales keep the table's float type. A hidden size not divisible by 32 is left as it is."""

    def apply(self, model: ir.Model) -> ir.Model:
        import numpy as np
        import onnx_ir as ir

        graph = model.graph
        gather = _find(graph, "Gather", "embed_tokens")
        table: Any = gather.inputs[0] if gather is not None else None
        array = _const(table)
        if gather is None or array is None or table.name not in graph.initializers:
            logger.warning("QuantizeEmbeddingInt8: no embed_tokens Gather on an initializer; model unchanged")
            return model
        if table.const_value.dtype not in (ir.DataType.FLOAT, ir.DataType.FLOAT16) or array.ndim != 2:
            return model
        axis = gather.attributes.get("axis")
        vocab, hidden = array.shape
        if hidden % BLOCK or (axis is not None and axis.as_int() != 0):
            return model
        blocks = array.astype(np.float32).reshape(vocab, hidden // BLOCK, BLOCK)
        scales = (np.abs(blocks).max(axis=2) / 127.0).astype(array.dtype)
        safe = np.where(scales.astype(np.float32) == 0, 1.0, scales.astype(np.float32))
        q = np.clip(np.round(blocks / safe[:, :, None]), -128, 127).astype(np.int16) + 128
        base = table.name
        inputs = [
            _new_initializer(graph, f"{base}_Q8", q.astype(np.uint8).reshape(vocab, hidden)),
            gather.inputs[1],
            _new_initializer(graph, f"{base}_scales", scales),
            _new_initializer(graph, f"{base}_zp", np.full((vocab, hidden // BLOCK), 128, np.uint8)),
        ]
        _msft_opset(model)
        name = (gather.name or "embed_tokens").replace("Gather", "GatherBlockQuantized")
        gbq = _node(
            graph,
            "GatherBlockQuantized",
            inputs,
            name,
            MSFT,
            bits=8,
            block_size=BLOCK,
            gather_axis=0,
            quantize_axis=1,
        )
        out = gather.outputs[0]
        gbq.outputs[0].type, gbq.outputs[0].shape = out.type, out.shape
        out.replace_all_uses_with(gbq.outputs[0], replace_graph_outputs=True)
        old_name = out.name
        graph.remove(gather, safe=True)
        gbq.outputs[0].name = old_name
        _drop_unused_initializers(graph, [table])
        _finish(model)
        return model


class ShareEmbeddingLmHead(Surgeon):
    """After ``QuantizeEmbeddingInt8``: the ``lm_head`` ``MatMulNBits`` becomes an 8-bit ``MatMulNBits``
    reading the embedding's quantized table (reshaped to blocks), scales and zero points; the head's own
    weights go. Already shared, or no 8-bit ``embed_tokens`` ``GatherBlockQuantized``: model unchanged."""

    def apply(self, model: ir.Model) -> ir.Model:
        import numpy as np

        graph = model.graph
        gbq = _find(graph, "GatherBlockQuantized", "embed_tokens")
        head = _find(graph, "MatMulNBits", "lm_head")
        if gbq is None or head is None:
            logger.warning(
                "ShareEmbeddingLmHead: no embed_tokens GatherBlockQuantized or lm_head MatMulNBits"
            )
            return model
        attrs = gbq.attributes
        bits = attrs["bits"].as_int() if "bits" in attrs else 4
        block = attrs["block_size"].as_int() if "block_size" in attrs else 128
        table, scales = gbq.inputs[0], gbq.inputs[2]
        zero_points = gbq.inputs[3] if len(gbq.inputs) > 3 else None
        array = _const(table)
        if bits != 8 or array is None or array.ndim != 2 or head.inputs[2] is scales:
            return model
        vocab, hidden = array.shape
        shape = _new_initializer(
            graph, f"{head.name}_shared_shape", np.array([vocab, hidden // block, block], np.int64)
        )
        reshaped = _node(graph, "Reshape", [table, shape], f"{head.name}_Reshape_shared").outputs[0]
        inputs = [head.inputs[0], reshaped, scales] + ([zero_points] if zero_points is not None else [])
        extra = {}
        if "accuracy_level" in head.attributes:
            extra["accuracy_level"] = head.attributes["accuracy_level"].as_int()
        shared = _node(
            graph,
            "MatMulNBits",
            inputs,
            f"{head.name}_shared",
            MSFT,
            bits=8,
            block_size=block,
            K=hidden,
            N=vocab,
            **extra,
        )
        out = head.outputs[0]
        shared.outputs[0].type, shared.outputs[0].shape = out.type, out.shape
        old_inputs = list(head.inputs)[1:]
        out.replace_all_uses_with(shared.outputs[0], replace_graph_outputs=True)
        old_name = out.name
        graph.remove(head, safe=True)
        shared.outputs[0].name = old_name
        _drop_unused_initializers(graph, old_inputs)
        _msft_opset(model)
        _finish(model)
        return model
