"""``RemoveMemcpy``: bypass the host<->device copies onnxruntime bakes into a graph it partitioned.

Olive's surgeon (olive/passes/onnx/graph_surgeries.py, since Olive 0.13) runs after
``OrtTransformersOptimization`` on a graph optimized for a GPU execution provider, whose saved model holds
``MemcpyToHost`` / ``MemcpyFromHost`` nodes; onnxruntime re-inserts the copies a session needs when it
loads the model. Olive runs it whatever the target: on a model made for the CPU there is nothing to
remove and the model is unchanged, which is logged.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from olivine.passes.surgeons import Surgeon

if TYPE_CHECKING:
    import onnx_ir as ir

logger = logging.getLogger(__name__)
MEMCPY_OPS = ("MemcpyToHost", "MemcpyFromHost")


class RemoveMemcpy(Surgeon):
    def apply(self, model: ir.Model) -> ir.Model:
        from onnx_ir.passes.common import TopologicalSortPass

        removed = _remove_from_graph(model.graph)
        if removed:
            # Bypassing a copy can leave a consumer before its new producer.
            TopologicalSortPass()(model)
            logger.info("RemoveMemcpy: removed %d Memcpy node(s)", removed)
        else:
            logger.info("RemoveMemcpy: the model has no MemcpyToHost/MemcpyFromHost node; unchanged")
        return model


def _remove_from_graph(graph: ir.Graph) -> int:
    """Bypass and remove every one-input, one-output Memcpy node of ``graph`` and of its subgraphs."""
    import onnx_ir as ir

    removed = 0
    for node in list(graph):
        for attr in node.attributes.values():
            if attr.type == ir.AttributeType.GRAPH:
                removed += _remove_from_graph(attr.value)
            elif attr.type == ir.AttributeType.GRAPHS:
                removed += sum(_remove_from_graph(subgraph) for subgraph in attr.value)
        if node.op_type not in MEMCPY_OPS or len(node.inputs) != 1 or len(node.outputs) != 1:
            continue
        src, copied = node.inputs[0], node.outputs[0]
        if src is None:
            continue
        if copied in graph.outputs:
            if src.is_graph_input() or src.is_initializer() or src in graph.outputs:
                continue  # the copy is the only thing that gives this output its own name: keep it
            # Keep the public output name: the producer's value takes it.
            name, dtype, shape = copied.name, copied.type, copied.shape
            copied.replace_all_uses_with(src, replace_graph_outputs=True)
            src.name = name
            # The output keeps its declared type and shape (a Memcpy changes neither).
            src.type = src.type or dtype
            src.shape = src.shape or shape
        else:
            copied.replace_all_uses_with(src)
        graph.remove(node, safe=True)
        removed += 1
    return removed
