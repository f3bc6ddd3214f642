"""``OnnxPeepholeOptimizer``: graph clean-ups that keep the model's operators (constant folding, dead code,
redundant casts and reshapes), with onnxscript's optimizer and the ``onnxoptimizer`` package.

Olive's parameters and defaults (olive/passes/onnx/peephole_optimizer.py): ``onnxscript_optimize``,
``onnxoptimizer_optimize`` and ``fuse_reshape_operations`` on; ``fix_com_microsoft_opset`` and
``cast_chain_elimination`` off. Olive's older ``OnnxModelOptimizer`` name runs this pass. Olive skips
``onnxoptimizer`` with a warning when it is missing; here the pass says how to install it or turn it off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from olivine.errors import MissingDependencyError, PassRunError
from olivine.model.handle import ModelHandle, walk_nodes
from olivine.passes.base import PassConfig, PassContext
from olivine.passes.onnx_io import ExternalDataConfig, OnnxPass, load_onnx, write_output


class OnnxPeepholeOptimizerConfig(ExternalDataConfig):
    onnxscript_optimize: bool = True
    onnxoptimizer_optimize: bool = True
    fuse_reshape_operations: bool = True
    fix_com_microsoft_opset: bool = False
    cast_chain_elimination: bool = False


class OnnxPeepholeOptimizer(OnnxPass):
    name: ClassVar[str] = "OnnxPeepholeOptimizer"
    version: ClassVar[str] = "2"
    config_class: ClassVar[type[PassConfig]] = OnnxPeepholeOptimizerConfig
    libraries: ClassVar[tuple[str, ...]] = ("onnx", "onnxruntime", "onnxscript", "onnx-ir", "onnxoptimizer")

    def run(self, model: ModelHandle, config: Any, output_dir: Path, ctx: PassContext) -> ModelHandle:
        cfg: OnnxPeepholeOptimizerConfig = config
        proto = load_onnx(model.onnx_path)
        before = len(proto.graph.node)
        names = ([i.name for i in proto.graph.input], [o.name for o in proto.graph.output])
        steps = [
            (cfg.onnxscript_optimize, _onnxscript_optimize),
            (cfg.onnxoptimizer_optimize, _onnxoptimizer_optimize),
            (cfg.fuse_reshape_operations, _fuse_reshapes),
            (cfg.cast_chain_elimination, _eliminate_cast_chains),
            # Last: the rewriter drops opset imports no node uses.
            (cfg.fix_com_microsoft_opset, _declare_com_microsoft),
        ]
        for enabled, step in steps:
            if not enabled:
                continue
            try:
                proto = step(proto)
            except MissingDependencyError:
                raise
            except Exception as exc:  # the optimizers raise assorted errors on graphs they cannot type
                raise PassRunError(self.name, f"{step.__name__.strip('_')} failed: {exc}") from exc
        _keep_io_names(proto, *names)
        ctx.logger.info("peephole optimization: %d -> %d nodes", before, len(proto.graph.node))
        return write_output(proto, model, output_dir, cfg)


def _keep_io_names(proto: Any, inputs: list[str], outputs: list[str]) -> None:
    """Give the graph its input names back: onnxscript's optimizer renames an input that is also a graph
    output (``ids`` -> ``ids_orig`` + ``Identity -> ids``), and every caller feeding ``ids`` would fail."""
    graph = proto.graph
    now = [i.name for i in graph.input]
    if len(now) == len(inputs):
        for renamed, name in zip(now, inputs, strict=True):
            if renamed == name:
                continue
            bridge = ([renamed], [name])
            for node in list(graph.node):
                if node.op_type == "Identity" and (list(node.input), list(node.output)) == bridge:
                    graph.node.remove(node)
            for node in graph.node:
                node.input[:] = [name if value == renamed else value for value in node.input]
            for value in graph.output:
                if value.name == renamed:
                    value.name = name
            for entry in list(graph.value_info):
                if entry.name in (renamed, name):
                    graph.value_info.remove(entry)
            next(i for i in graph.input if i.name == renamed).name = name
    got = ([i.name for i in graph.input], [o.name for o in graph.output])
    if got != (inputs, outputs):
        raise PassRunError(
            "OnnxPeepholeOptimizer",
            f"the optimizers changed the model's inputs/outputs {inputs} / {outputs} to {got[0]} / {got[1]}",
        )


def _onnxscript_optimize(proto: Any) -> Any:
    import onnxscript

    try:
        return onnxscript.optimizer.optimize(proto)
    except Exception as exc:  # onnx shape inference rejects some contrib-op graphs; Olive retries without
        if "TypeInferenceError" not in str(exc):
            raise
        return onnxscript.optimizer.optimize(proto, onnx_shape_inference=False)


def _onnxoptimizer_optimize(proto: Any) -> Any:
    try:
        import onnxoptimizer
    except ModuleNotFoundError as exc:
        raise MissingDependencyError(
            "onnxoptimizer_optimize needs the package 'onnxoptimizer': pip install 'olivine[onnxopt]', "
            "or set onnxoptimizer_optimize: false"
        ) from exc
    return onnxoptimizer.optimize(proto)


def _fuse_reshapes(proto: Any) -> Any:
    """Drop a Reshape whose only consumer is a Reshape to ``[-1]`` (the flatten makes the first useless)."""
    import numpy as np
    from onnx_ir.passes.common import RemoveUnusedNodesPass
    from onnxscript import ir

    if sum(n.op_type == "Reshape" for n in walk_nodes(proto.graph.node)) < 2:  # nothing to fuse: no IR trip
        return proto
    model = ir.from_proto(proto)
    changed = 0
    for node in model.graph.all_nodes():
        if node.op_type != "Reshape" or node.inputs[0] is None or len(node.inputs) < 2:
            continue
        data = node.inputs[0]
        previous = data.producer()
        shape = node.inputs[1]
        value = ir.convenience.get_const_tensor(shape) if shape is not None else None
        flattens = value is not None and np.array_equal(value.numpy(), np.array([-1]))
        if (
            previous is not None
            and previous.op_type == "Reshape"
            and flattens
            and len(tuple(data.uses())) == 1
        ):
            node.replace_input_with(0, previous.inputs[0])
            changed += 1
    if not changed:
        return proto
    RemoveUnusedNodesPass()(model)
    return ir.to_proto(model)


def _declare_com_microsoft(proto: Any) -> Any:
    from onnx import helper

    if "com.microsoft" not in {o.domain for o in proto.opset_import}:
        proto.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    for function in proto.functions:
        if "com.microsoft" not in {o.domain for o in function.opset_import}:
            function.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return proto


def _eliminate_cast_chains(proto: Any) -> Any:
    """``Cast(Cast(x, to=B), to=A)`` with ``x`` already of type A becomes ``x`` (dynamo exports do this)."""
    from onnxscript import ir
    from onnxscript.rewriter import RewriteRule, rewrite
    from onnxscript.rewriter._basics import MatchResult

    def pattern(op: Any, x: Any, to: Any, to_ignored: Any) -> Any:
        return op.Cast(op.Cast(x, to=to_ignored), to=to)

    def check(context: Any, x: ir.Value, to: ir.Attr, to_ignored: ir.Attr) -> MatchResult:
        result = MatchResult()
        if x.dtype is None or x.dtype != to.as_int():
            return result.fail("not a round trip")
        return result

    def replacement(op: Any, x: Any, **_: Any) -> Any:
        return op.Identity(x)

    rule = RewriteRule(pattern, replacement, check, name="CastCastRoundTrip")
    return rewrite(proto, pattern_rewrite_rules=[rule])
