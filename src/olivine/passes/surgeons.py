"""The surgeons of ``GraphSurgeries``: one strict parameter model per surgeon, with Olive's names and
parameters (olive/passes/onnx/graph_surgeries.py), applied to an ONNX IR model.

Olive looks surgeon names up case-insensitively and ignores unknown parameters with a warning; here an
unknown parameter is an error naming it. Surgeons that only make sense for a non-CPU runtime (NPU/DLA
layout transforms, GPU-only operators) are refused with the reason, see :data:`NON_CPU_SURGEONS`.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_validator

if TYPE_CHECKING:
    import onnx_ir as ir

_DLA = "it is an NVIDIA DLA / NPU layout transform (Olive's dla_transforms)"
#: Olive's surgeons tied to a non-CPU runtime, with the reason they are refused.
NON_CPU_SURGEONS: dict[str, str] = {
    **{
        name: _DLA
        for name in (
            "MatMulToTransposeConvTranspose",
            "RemoveIntermediarySqueezeAndUnsqueeze",
            "Non4DModelInputs",
            "Non4DModelOutputs",
            "StandaloneReduceSum",
            "Gather",
            "GatherElements",
            "Non4DInitializers",
            "Non4DReshape",
            "Non4DExpand",
            "Non4DTranspose",
            "Non4DSlice",
            "Non4DLpNorm",
            "Flatten",
            "ReshapeReduceSum",
            "ReshapeClipReduceSum",
            "ReduceMax",
        )
    },
    "PackedAttentionToPackedMHA": "PackedMultiHeadAttention has only a CUDA kernel in onnxruntime",
}


#: Surgeons that only rename, reorder, drop or expose named parts of a graph (checked against the input
#: model at validation: they need no weights and change nothing a later check of theirs cannot follow).
NAMING_SURGEONS = frozenset(
    {
        "RenameInputs",
        "RenameOutputs",
        "RemoveInputs",
        "ReorderInputs",
        "ZeroOutInput",
        "ExposeOutputs",
        "RenameInputDims",
        "RenameOutputDims",
    }
)

#: Surgeon classes that only give others their shape.
_BASES = frozenset({"ProtoSurgeon"})


class Surgeon(BaseModel):
    """A surgeon's parameters (strict); :meth:`apply` changes the model in place or returns a new one."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    registry: ClassVar[dict[str, type[Surgeon]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_") and cls.__name__ not in _BASES:  # bases are not surgeons
            Surgeon.registry[cls.__name__.lower()] = cls

    def apply(self, model: ir.Model) -> ir.Model:
        raise NotImplementedError


class ProtoSurgeon(Surgeon):
    """A surgeon that edits the ``onnx.ModelProto`` (for graphs the IR cannot even load)."""

    def apply_proto(self, proto: Any) -> Any:
        raise NotImplementedError


def ir_graphs(graph: Any) -> Any:
    """``graph`` (an ``onnx_ir.Graph``) and every subgraph in its nodes' attributes, depth first."""
    import onnx_ir as ir

    yield graph
    for node in graph:
        for attr in node.attributes.values():
            if attr.type == ir.AttributeType.GRAPH:
                yield from ir_graphs(attr.value)
            elif attr.type == ir.AttributeType.GRAPHS:
                for subgraph in attr.value:
                    yield from ir_graphs(subgraph)


def _infer_shapes(model: ir.Model) -> ir.Model:
    """ONNX shape inference when it works (contrib ops defeat it; the shapes already known still hold)."""
    from onnx_ir.passes.common import ShapeInferencePass

    with contextlib.suppress(Exception):
        model = ShapeInferencePass()(model).model
    return model


class _Rewrite(Surgeon):
    """A surgeon that is a set of onnxscript rewrite rules."""

    def rules(self) -> Any:
        raise NotImplementedError

    def apply(self, model: ir.Model) -> ir.Model:
        if self.rules().apply_to_model(model):
            drop_dead(model)
        return model


def drop_dead(model: ir.Model) -> None:
    """Drop the nodes, initializers and opset imports a rewrite left unused (as Olive's
    ``onnxscript.rewriter.rewrite`` does after its rules)."""
    from onnx_ir.passes.common import RemoveUnusedNodesPass, RemoveUnusedOpsetsPass

    RemoveUnusedNodesPass()(model)
    RemoveUnusedOpsetsPass()(model)


def _paired(old: list[str], new: list[str]) -> None:
    if len(old) != len(new):
        raise ValueError(f"old_names ({len(old)}) and new_names ({len(new)}) must have the same length")
    for key, names in (("old_names", old), ("new_names", new)):
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"{key}: {repeated} given more than once")
        if any(not n for n in names):
            raise ValueError(f"{key}: an empty name")


class RenameInputs(Surgeon):
    old_names: list[str]
    new_names: list[str]

    @model_validator(mode="after")
    def _lengths(self) -> RenameInputs:
        _paired(self.old_names, self.new_names)
        return self

    def apply(self, model: ir.Model) -> ir.Model:
        _rename(model, model.graph.inputs, dict(zip(self.old_names, self.new_names, strict=True)), "input")
        return model


class RenameOutputs(Surgeon):
    old_names: list[str]
    new_names: list[str]

    @model_validator(mode="after")
    def _lengths(self) -> RenameOutputs:
        _paired(self.old_names, self.new_names)
        return self

    def apply(self, model: ir.Model) -> ir.Model:
        _rename(model, model.graph.outputs, dict(zip(self.old_names, self.new_names, strict=True)), "output")
        return model


def _rename(model: ir.Model, values: Any, mapping: dict[str, str], what: str) -> None:
    names = [v.name for v in values]
    missing = [n for n in mapping if n not in names]
    if missing:
        raise ValueError(f"no graph {what} named {missing} (the {what}s: {names})")
    # A new name already taken by another value would make two values one (an input renamed to an
    # initializer's name reads the initializer: the model silently computes something else).
    renamed = {id(v) for v in values if v.name in mapping}
    taken = {v.name for v in _all_values(model) if id(v) not in renamed and v.name}
    clashes = sorted({new for old, new in mapping.items() if new in taken and new != old})
    if clashes:
        raise ValueError(f"new name(s) {clashes} are already names of other values in the graph")
    for value in values:
        if value.name in mapping:
            value.name = mapping[value.name]


def _all_values(model: ir.Model) -> list[Any]:
    """Every value of the main graph: inputs, initializers, node outputs."""
    graph = model.graph
    values = [*graph.inputs, *graph.initializers.values()]
    values += [out for node in graph for out in node.outputs]
    return values


class InferShapes(Surgeon):
    def apply(self, model: ir.Model) -> ir.Model:
        from onnx_ir.passes.common import ShapeInferencePass

        return ShapeInferencePass()(model).model


class RemoveShapes(Surgeon):
    """Forget the type and shape of every intermediate value (declared graph outputs keep theirs)."""

    def apply(self, model: ir.Model) -> ir.Model:
        import onnx_ir as ir

        preserved = set(model.graph.outputs)
        for node in model.graph.all_nodes():
            for attr in node.attributes.values():
                if attr.type == ir.AttributeType.GRAPH:
                    preserved.update(attr.value.outputs)
                elif attr.type == ir.AttributeType.GRAPHS:
                    for subgraph in attr.value:
                        preserved.update(subgraph.outputs)
        for node in model.graph.all_nodes():
            for value in node.outputs:
                if value not in preserved:
                    value.shape = None
                    value.type = None
        return model


class RemoveInitializerFromInputs(Surgeon):
    def apply(self, model: ir.Model) -> ir.Model:
        from onnx_ir.passes.common import RemoveInitializersFromInputsPass

        return RemoveInitializersFromInputsPass()(model).model


class ReorderInputs(Surgeon):
    permutation: list[int]

    def apply(self, model: ir.Model) -> ir.Model:
        inputs = list(model.graph.inputs)
        if sorted(self.permutation) != list(range(len(inputs))):
            raise ValueError(f"permutation {self.permutation} is not an order of the {len(inputs)} inputs")
        model.graph.inputs.clear()
        model.graph.inputs.extend(inputs[i] for i in self.permutation)
        return model


class ReplaceErfWithTanh(_Rewrite):
    """``Erf(x)`` -> ``Tanh(x * 605/503)`` (the rational approximation), for float inputs. The scale is a
    constant of ``x``'s element type; when shape inference cannot tell that type (``x`` comes from an
    onnxruntime-only operator) it is cast to ``x``'s type in the graph (``CastLike``, opset >= 15). An
    ``Erf`` left as it was is an error naming it (Olive raises "Cannot find dtype")."""

    def rules(self, castlike: bool = True) -> Any:
        import ml_dtypes
        import numpy as np
        import onnx_ir as ir
        from onnxscript.rewriter import pattern

        dtypes = {
            ir.DataType.FLOAT: np.float32,
            ir.DataType.FLOAT16: np.float16,
            ir.DataType.DOUBLE: np.float64,
            ir.DataType.BFLOAT16: ml_dtypes.bfloat16,
        }
        counter = itertools.count()

        def target(op: Any, x: Any) -> Any:
            return op.Erf(x)

        def condition(context: Any, x: Any) -> bool:
            return x.dtype in dtypes or (x.dtype is None and castlike)

        def replacement(op: Any, x: Any) -> Any:
            if x.dtype is None:  # Erf takes float types only: the scale becomes x's type at run time
                scale = op.CastLike(op.Constant(value=ir.tensor(np.array(605 / 503, dtype=np.float32))), x)
                return op.Tanh(op.Mul(x, scale))
            name = f"erf_tanh_scale_{next(counter)}"
            scale = op.initializer(ir.tensor(np.array(605 / 503, dtype=dtypes[x.dtype]), name=name))
            return op.Tanh(op.Mul(x, scale))

        return pattern.RewriteRuleSet([pattern.RewriteRule(target, replacement, condition)])

    def apply(self, model: ir.Model) -> ir.Model:
        model = _infer_shapes(model)  # the rule needs the input's element type
        castlike = model.graph.opset_imports.get("", 1) >= 15
        if self.rules(castlike).apply_to_model(model):
            drop_dead(model)
        left = [
            n.name or n.outputs[0].name
            for n in model.graph.all_nodes()
            if n.op_type == "Erf" and n.domain == ""
        ]
        if left:
            raise ValueError(
                f"Erf node(s) {left} not replaced: the element type of their input is unknown (shape "
                "inference cannot reach it) and the model's opset is below 15 (no CastLike)"
            )
        return model


class ZeroOutInput(Surgeon):
    """Feed zeros (a Constant of the input's type and shape; dynamic dims as 1) to one input of a node."""

    node_name: str
    input_idx: int

    def apply(self, model: ir.Model) -> ir.Model:
        import numpy as np
        import onnx_ir as ir

        node = _node(model, self.node_name)
        index = _index(
            self.input_idx,
            len(node.inputs),
            "input_idx",
            f"node '{self.node_name}' has {len(node.inputs)} inputs",
        )
        target = node.inputs[index]
        if target is None or target.shape is None or target.dtype is None:
            raise ValueError(f"input {self.input_idx} of node '{self.node_name}' has no known type and shape")
        dims = [d if isinstance(d, int) else 1 for d in target.shape]
        zeros = np.zeros(dims, dtype=target.dtype.numpy())
        constant = ir.Node(
            "",
            "Constant",
            inputs=[],
            attributes=[ir.AttrTensor("value", ir.tensor(zeros))],
            num_outputs=1,
            name=f"{self.node_name}_zero",
        )
        constant.outputs[0].name = f"{self.node_name}_zero_output_0"
        node.prepend(constant)
        node.replace_input_with(index, constant.outputs[0])
        return model


def _node(model: ir.Model, name: str) -> Any:
    found = next((n for n in model.graph if n.name == name), None)
    if found is None:
        raise ValueError(f"no node named '{name}' in the graph")
    return found


class RemoveInputs(Surgeon):
    """Drop graph inputs; nodes lose those inputs, and a node left with none is removed."""

    names: list[str]

    def apply(self, model: ir.Model) -> ir.Model:
        graph = model.graph
        names = set(self.names)
        used = {v.name for v in graph.inputs} | {
            v.name for node in graph for v in node.inputs if v is not None
        }
        unknown = sorted(names - used)
        if unknown:
            raise ValueError(f"no graph input or node input named {unknown}")
        for value in list(graph.inputs):
            if value.name in names:
                graph.inputs.remove(value)
        for node in list(graph):
            kept = [v for v in node.inputs if v is None or v.name not in names]
            if len(kept) == len(node.inputs):
                continue
            if not kept:
                graph.remove(node, safe=True)
                continue
            for index, kept_value in enumerate(kept):
                node.replace_input_with(index, kept_value)
            node.resize_inputs(len(kept))
        return model


class ExposeOutputs(Surgeon):
    """Add the first output of each named node to the graph outputs."""

    names: list[str]

    def apply(self, model: ir.Model) -> ir.Model:
        found = {n.name: n for n in model.graph if n.name in self.names}
        missing = [n for n in self.names if n not in found]
        if missing:
            raise ValueError(f"no node named {missing} in the graph")
        # In the graph's node order, as Olive adds them; each value once, and not again when it is already
        # a graph output (Olive appends it twice).
        values = list(dict.fromkeys(n.outputs[0] for n in model.graph if n.name in found))
        values = [v for v in values if v not in model.graph.outputs]
        if any(v.type is None for v in values):
            model = _infer_shapes(model)  # a graph output must declare its type
        model.graph.outputs.extend(values)
        return model


class DecomposeQuickGelu(_Rewrite):
    """``com.microsoft.QuickGelu(x)`` -> ``x * Sigmoid(1.702 * x)`` with standard operators."""

    def rules(self) -> Any:
        import onnx_ir as ir
        from onnxscript.rewriter import pattern

        def target(op: Any, x: Any) -> Any:
            return op.QuickGelu(x, _domain="com.microsoft")

        def replacement(op: Any, x: Any) -> Any:
            alpha = op.Constant(value=ir.tensor(1.702, dtype=x.dtype or ir.DataType.FLOAT))
            return op.Mul(x, op.Sigmoid(op.Mul(alpha, x)))

        return pattern.RewriteRuleSet([pattern.RewriteRule(target, replacement)])


class MatMulAddToGemm(_Rewrite):
    """``Add(MatMul(a, W), b)`` -> ``Gemm(a, W, b)`` for a 2-D ``W`` and a 1-D ``b``.

    As in Olive: an ``a`` of another rank is reshaped to 2-D before the Gemm and the result back after
    it when ``a``'s and ``W``'s shapes are static (a dynamic shape would need shape arithmetic in the
    graph; those MatMuls are left as they are); a ``Relu`` that is the Add's only consumer then goes
    between the Gemm and the reshape back, where onnxruntime fuses it into the Gemm.
    """

    def rules(self) -> Any:
        from onnxscript.rewriter import pattern

        def gemm_in_2d(op: Any, a: Any, w: Any, b: Any, relu: bool) -> Any:
            a_shape, w_shape = _static_dims(a), _static_dims(w)
            assert a_shape is not None and w_shape is not None  # the conditions saw to it
            rows = [math.prod(a_shape[:-1]), a_shape[-1]]
            flat = op.Reshape(a, op.Constant(value_ints=rows))
            out = op.Gemm(flat, w, b)
            if relu:
                out = op.Relu(out)
            return op.Reshape(out, op.Constant(value_ints=[*a_shape[:-1], w_shape[-1]]))

        def plain(op: Any, a: Any, w: Any, b: Any) -> Any:
            return op.Add(op.MatMul(a, w), b)

        def plain_condition(context: Any, a: Any, w: Any, b: Any) -> bool:
            if _rank(w) != 2 or _rank(b) != 1:
                return False
            if _rank(a) == 2:
                return True
            users = [use.node for use in context.root.outputs[0].uses()]
            relu_next = len(users) == 1 and users[0].op_type == "Relu"
            return not relu_next and _reshapable(a, w)

        def plain_replacement(op: Any, a: Any, w: Any, b: Any) -> Any:
            return op.Gemm(a, w, b) if _rank(a) == 2 else gemm_in_2d(op, a, w, b, relu=False)

        def with_relu(op: Any, a: Any, w: Any, b: Any) -> Any:
            return op.Relu(op.Add(op.MatMul(a, w), b))

        def with_relu_condition(context: Any, a: Any, w: Any, b: Any) -> bool:
            return _rank(w) == 2 and _rank(b) == 1 and _rank(a) != 2 and _reshapable(a, w)

        def with_relu_replacement(op: Any, a: Any, w: Any, b: Any) -> Any:
            return gemm_in_2d(op, a, w, b, relu=True)

        return pattern.RewriteRuleSet(
            [
                pattern.RewriteRule(with_relu, with_relu_replacement, with_relu_condition),
                pattern.RewriteRule(plain, plain_replacement, plain_condition),
            ],
            commute=True,
        )

    def apply(self, model: ir.Model) -> ir.Model:
        return super().apply(_infer_shapes(model))


def _rank(value: Any) -> int | None:
    return value.shape.rank() if value.shape is not None else None


def _static_dims(value: Any) -> list[int] | None:
    """``value``'s dimensions when every one is a known number."""
    if value.shape is None or not all(isinstance(d, int) for d in value.shape):
        return None
    return [int(d) for d in value.shape]


def _reshapable(a: Any, w: Any) -> bool:
    """A MatMul input of rank 1 or > 2 that can go through a 2-D Gemm: static shapes that agree."""
    a_dims, w_dims = _static_dims(a), _static_dims(w)
    return a_dims is not None and w_dims is not None and len(a_dims) >= 1 and a_dims[-1] == w_dims[0]


class GemmToMatMulAdd(_Rewrite):
    """``Gemm(a, B, c)`` (alpha = beta = 1, no transA) -> ``MatMul(a, B or B^T)`` (+ ``Add(c)``), so the
    block-wise int4 quantizer, which takes MatMuls, can quantize those weights."""

    def rules(self) -> Any:
        from onnxscript.rewriter import pattern

        def plain(node_attrs: Any) -> bool:
            alpha = node_attrs.get("alpha")
            beta = node_attrs.get("beta")
            trans_a = node_attrs.get("transA")
            return (
                (alpha is None or alpha.as_float() == 1.0)
                and (beta is None or beta.as_float() == 1.0)
                and (trans_a is None or trans_a.as_int() == 0)
            )

        def with_bias(op: Any, a: Any, b: Any, c: Any) -> Any:
            return op.Gemm(a, b, c, _allow_other_attributes=True, _outputs=["y"])

        def without_bias(op: Any, a: Any, b: Any) -> Any:
            # Also ``Gemm(a, B, "")``: an empty bias input is no bias.
            return op.Gemm(a, b, _allow_other_attributes=True, _allow_other_inputs=True, _outputs=["y"])

        def check(context: Any, y: Any, **_: Any) -> bool:
            return plain(y.producer().attributes)

        def check_plain(context: Any, y: Any, **_: Any) -> bool:
            extra = list(y.producer().inputs)[2:]
            return all(v is None for v in extra) and plain(y.producer().attributes)

        def rhs(op: Any, b: Any, y: Any) -> Any:
            import onnx_ir as ir

            trans_b = y.producer().attributes.get("transB")
            if trans_b is None or not trans_b.as_int():
                return b
            if b.const_value is not None:  # a constant weight is stored transposed (as Olive does)
                name = f"{b.name}_transposed"
                return op.initializer(ir.tensor(b.const_value.numpy().T.copy(), name=name))
            return op.Transpose(b, perm=[1, 0])

        def replace_bias(op: Any, a: Any, b: Any, c: Any, y: Any) -> Any:
            return op.Add(op.MatMul(a, rhs(op, b, y)), c)

        def replace_plain(op: Any, a: Any, b: Any, y: Any) -> Any:
            return op.MatMul(a, rhs(op, b, y))

        return pattern.RewriteRuleSet(
            [
                pattern.RewriteRule(with_bias, replace_bias, check),
                pattern.RewriteRule(without_bias, replace_plain, check_plain),
            ]
        )


class ReciprocalMulToDiv(Surgeon):
    """``Mul(a, Reciprocal(x))`` -> ``Div(a, x)`` (lets onnxruntime fuse rsqrt-style RMSNorm), for every
    such ``Mul``: a Reciprocal feeding several is replaced in each, and it goes when nothing else reads
    it (as Olive's rewrite does)."""

    def apply(self, model: ir.Model) -> ir.Model:
        import onnx_ir as ir

        for node in list(model.graph.all_nodes()):
            if node.op_type != "Mul" or node.domain != "" or len(node.inputs) != 2 or node.graph is None:
                continue
            index = next((i for i in (1, 0) if _reciprocal(node.inputs[i]) is not None), None)
            if index is None:
                continue
            reciprocal = _reciprocal(node.inputs[index])
            div = ir.Node(
                "",
                "Div",
                inputs=[node.inputs[1 - index], reciprocal.inputs[0]],
                name=f"{node.name}_div" if node.name else None,
            )
            out, new = node.outputs[0], div.outputs[0]
            new.type, new.shape = out.type, out.shape
            node.prepend(div)
            out.replace_all_uses_with(new, replace_graph_outputs=True)
            graph = node.graph
            graph.remove(node, safe=True)
            new.name = out.name
            if (
                next(iter(reciprocal.outputs[0].uses()), None) is None
                and not reciprocal.outputs[0].is_graph_output()
            ):
                reciprocal.graph.remove(reciprocal, safe=True)
        return model


def _reciprocal(value: Any) -> Any:
    """The standard ``Reciprocal`` node producing ``value`` (with an input), or None."""
    producer = value.producer() if value is not None else None
    if producer is None or producer.op_type != "Reciprocal" or producer.domain != "" or not producer.inputs:
        return None
    return producer if producer.inputs[0] is not None else None


class ReplaceAttentionMaskValue(Surgeon):
    """Float constants below ``threshold`` feeding only mask-like ops (Add, Mul, Expand, Where, Shape)
    become ``replacement`` (a huge negative mask value does not quantize well)."""

    threshold: float = -3e30
    replacement: float = -1e4
    _CONSUMERS: ClassVar[set[str]] = {"Add", "Mul", "Expand", "Where", "Shape"}

    def apply(self, model: ir.Model) -> ir.Model:
        import onnx_ir as ir

        graphs = list(ir_graphs(model.graph))  # the main graph and If / Loop / Scan bodies, as Olive
        for node in model.graph.all_nodes():
            attr = node.attributes.get("value")
            if node.op_type not in ("Constant", "ConstantOfShape") or attr is None:
                continue
            if attr.type != ir.AttributeType.TENSOR or attr.value.dtype != ir.DataType.FLOAT:
                continue
            if self._mask_like(node.outputs[0]) and (new := self._replaced(attr.value.numpy())) is not None:
                node.attributes["value"] = ir.AttrTensor("value", ir.tensor(new))
        for graph in graphs:
            for value in list(graph.initializers.values()):
                const = value.const_value
                if const is None or const.dtype != ir.DataType.FLOAT or not self._mask_like(value):
                    continue
                if (new := self._replaced(const.numpy())) is not None:
                    value.const_value = ir.tensor(new, name=value.name)
        return model

    def _mask_like(self, value: Any) -> bool:
        return all(use.node.op_type in self._CONSUMERS for use in value.uses())

    def _replaced(self, array: Any) -> Any:
        import numpy as np

        if not np.any(array < self.threshold):
            return None
        out = array.copy()
        out[out < self.threshold] = self.replacement
        return out


class RemoveGidxFromMatMulNBits(Surgeon):
    """Drop a sorted ``g_idx`` input (an identity channel order) from nodes such as ``MatMulNBits``."""

    def apply(self, model: ir.Model) -> ir.Model:
        import numpy as np

        graph = model.graph
        for node in list(graph):
            drop = next(
                (
                    v
                    for v in node.inputs
                    if v is not None
                    and v.name
                    and v.name.endswith("g_idx")
                    and v.const_value is not None
                    and np.all(np.diff(v.const_value.numpy().ravel()) >= 0)
                ),
                None,
            )
            if drop is None:
                continue
            kept = [v for v in node.inputs if v is not drop]
            for index, value in enumerate(kept):
                node.replace_input_with(index, value)
            node.resize_inputs(len(kept))
            if drop.name and drop.name in graph.initializers and next(iter(drop.uses()), None) is None:
                del graph.initializers[drop.name]
        return model


class DeduplicateNodes(ProtoSurgeon):
    """Remove a node whose output name an earlier node already produces (float16 conversion leaves these)."""

    def apply_proto(self, proto: Any) -> Any:
        seen: set[str] = set()
        keep = []
        for node in proto.graph.node:
            outputs = [o for o in node.output if o]
            if any(o in seen for o in outputs):
                continue
            seen.update(outputs)
            keep.append(node)
        if len(keep) < len(proto.graph.node):
            del proto.graph.node[:]
            proto.graph.node.extend(keep)
        return proto


class DeduplicateSubgraphInitializers(ProtoSurgeon):
    """In each Loop / If / Scan body, keep the first initializer of a name and drop later ones (onnxruntime's
    optimizer can copy initializers into subgraphs that already hold them)."""

    def apply_proto(self, proto: Any) -> Any:
        for node in proto.graph.node:
            for attr in node.attribute:
                if not attr.HasField("g"):
                    continue
                seen: set[str] = set()
                duplicates = []
                for init in attr.g.initializer:
                    if init.name in seen:
                        duplicates.append(init)
                    seen.add(init.name)
                for init in duplicates:
                    attr.g.initializer.remove(init)
        return proto


class SimplifiedLayerNormToRMSNorm(Surgeon):
    """``SimplifiedLayerNormalization`` / ``SkipSimplifiedLayerNormalization`` -> standard operators:
    ``x / Sqrt(ReduceMean(x^2, -1) + epsilon) * gamma`` (``x = input + skip`` for the skip form, whose sum
    output keeps its consumers). The node's own ``epsilon`` is used (Olive uses 1e-6 for every node)."""

    def apply(self, model: ir.Model) -> ir.Model:
        from onnx_ir.passes.common import TopologicalSortPass

        graph = model.graph
        axes_as_input = graph.opset_imports.get("", 13) >= 18
        changed = False
        for node in list(graph):
            skip = node.op_type == "SkipSimplifiedLayerNormalization"
            if node.op_type != "SimplifiedLayerNormalization" and not skip:
                continue
            inputs = list(node.inputs)
            if len(inputs) != (3 if skip else 2) or any(v is None for v in inputs):
                continue
            _Builder(graph, node.name or str(node.outputs[0].name)).rms_norm(node, skip, axes_as_input)
            changed = True
        if changed:
            TopologicalSortPass()(model)
        return model


class _Builder:
    """Appends standard-operator nodes (named after ``prefix``) and constants to a graph."""

    def __init__(self, graph: Any, prefix: str) -> None:
        self.graph = graph
        self.prefix = prefix
        self.count = 0

    def node(self, op: str, inputs: list[Any], attributes: Any = ()) -> Any:
        import onnx_ir as ir

        self.count += 1
        made = ir.Node(
            "", op, inputs=inputs, attributes=list(attributes), name=f"{self.prefix}_{op}_{self.count}"
        )
        made.outputs[0].name = f"{made.name}_out"
        self.graph.append(made)
        return made.outputs[0]

    def const(self, name: str, value: Any) -> Any:
        import onnx_ir as ir

        tensor = ir.tensor(value, name=f"{self.prefix}_{name}")
        init = ir.Value(name=tensor.name, const_value=tensor, type=ir.TensorType(tensor.dtype))
        self.graph.register_initializer(init)
        return init

    def rms_norm(self, node: Any, skip: bool, axes_as_input: bool) -> None:
        import numpy as np
        import onnx_ir as ir

        inputs = list(node.inputs)
        dtype = inputs[0].dtype.numpy() if inputs[0].dtype is not None else np.float32
        eps_attr = node.attributes.get("epsilon")
        # onnxruntime's defaults: 1e-5 for SimplifiedLayerNormalization, 1e-12 for the skip form.
        eps = eps_attr.as_float() if eps_attr is not None else (1e-12 if skip else 1e-5)
        x = self.node("Add", inputs[:2]) if skip else inputs[0]
        squared = self.node("Pow", [x, self.const("two", np.array([2.0], dtype=dtype))])
        keepdims = ir.AttrInt64("keepdims", 1)
        if axes_as_input:
            axes = self.const("axes", np.array([-1], np.int64))
            mean = self.node("ReduceMean", [squared, axes], [keepdims])
        else:
            mean = self.node("ReduceMean", [squared], [ir.AttrInt64s("axes", [-1]), keepdims])
        rms = self.node("Sqrt", [self.node("Add", [mean, self.const("eps", np.array([eps], dtype=dtype))])])
        y = self.node("Mul", [self.node("Div", [x, rms]), inputs[-1]])
        # The new values take over the old ones' names, types and shapes (graph outputs keep their names).
        pairs = [(node.outputs[0], y)]
        if skip and len(node.outputs) > 3 and node.outputs[3].name:
            pairs.append((node.outputs[3], x))
        for old, replacement in pairs:
            replacement.type, replacement.shape = old.type, old.shape
            old.replace_all_uses_with(replacement, replace_graph_outputs=True)
        names = [old.name for old, _ in pairs]
        self.graph.remove(node, safe=True)
        for name, (_, replacement) in zip(names, pairs, strict=True):
            replacement.name = name


class PowReduceSumPowDiv2LpNorm(_Rewrite):
    """``Div(x, Pow(ReduceSum(Pow(x, 2), axes=[-1]), 0.5))`` -> ``LpNormalization(x, p=2, axis=-1)``, with
    the axes as an input (opset >= 13) or an attribute, and ``keepdims`` 1 given or by default.

    Only a reduction over the last axis is replaced (Olive does not check the axes)."""

    def rules(self) -> Any:
        from onnxscript.rewriter import pattern

        def axes_input(op: Any, x: Any, two: Any, axes: Any, half: Any) -> Any:
            summed = op.ReduceSum(op.Pow(x, two), axes, _allow_other_attributes=True, _outputs=["summed"])
            return op.Div(x, op.Pow(summed, half))

        def axes_attribute(op: Any, x: Any, two: Any, half: Any) -> Any:
            summed = op.ReduceSum(op.Pow(x, two), _allow_other_attributes=True, _outputs=["summed"])
            return op.Div(x, op.Pow(summed, half))

        def scalar(value: Any, expected: float) -> bool:
            const = value.const_value
            return (
                const is not None and const.numpy().size == 1 and float(const.numpy().ravel()[0]) == expected
            )

        def condition(context: Any, x: Any, two: Any, half: Any, summed: Any, axes: Any = None) -> bool:
            if not (scalar(two, 2.0) and scalar(half, 0.5)):
                return False
            attributes = summed.producer().attributes
            keepdims = attributes.get("keepdims")
            if keepdims is not None and keepdims.as_int() != 1:
                return False
            if axes is not None:
                if axes.const_value is None:
                    return False
                reduced = axes.const_value.numpy().ravel().tolist()
            elif "axes" in attributes:
                reduced = list(attributes["axes"].as_ints())
            else:
                return False
            rank = x.shape.rank() if x.shape is not None else None
            return reduced == [-1] or (rank is not None and reduced == [rank - 1])

        def replacement(op: Any, x: Any, **_: Any) -> Any:
            return op.LpNormalization(x, p=2, axis=-1)

        return pattern.RewriteRuleSet(
            [
                pattern.RewriteRule(axes_input, replacement, condition),
                pattern.RewriteRule(axes_attribute, replacement, condition),
            ]
        )


class RenameInputDims(Surgeon):
    """Make dimension ``dim_idx`` of an input (by ``input_name`` or ``input_idx``) the symbol ``dim_name``."""

    dim_idx: int
    dim_name: str
    input_name: str | None = None
    input_idx: int | None = None

    @model_validator(mode="after")
    def _target(self) -> RenameInputDims:
        if self.input_name is None and self.input_idx is None:
            raise ValueError("input_name or input_idx is required")
        return self

    def apply(self, model: ir.Model) -> ir.Model:
        inputs = list(model.graph.inputs)
        if self.input_name is not None:
            target = next((v for v in inputs if v.name == self.input_name), None)
            if target is None:
                raise ValueError(f"no input '{self.input_name}' (inputs: {[v.name for v in inputs]})")
        else:
            assert self.input_idx is not None
            target = inputs[_index(self.input_idx, len(inputs), "input_idx", f"{len(inputs)} inputs")]
        _rename_dim(target, self.dim_idx, self.dim_name)
        return model


class RenameOutputDims(Surgeon):
    output_idx: int
    dim_idx: int
    dim_name: str

    def apply(self, model: ir.Model) -> ir.Model:
        outputs = model.graph.outputs
        index = _index(self.output_idx, len(outputs), "output_idx", f"{len(outputs)} outputs")
        _rename_dim(outputs[index], self.dim_idx, self.dim_name)
        return model


def _rename_dim(value: Any, dim_idx: int, dim_name: str) -> None:
    import onnx_ir as ir

    if value.shape is None:
        raise ValueError(f"'{value.name}' has no shape")
    index = _index(dim_idx, len(value.shape), "dim_idx", f"'{value.name}' has {len(value.shape)} dimensions")
    dims = list(value.shape)
    dims[index] = dim_name
    value.shape = ir.Shape(dims)


def _index(index: int, size: int, key: str, what: str) -> int:
    """``index`` into ``size`` items, counting from the end when negative (Python's indexing, as Olive's
    surgeons index their lists); out of range is a ValueError naming ``key``."""
    if not -size <= index < size:
        raise ValueError(f"{key} {index} is out of range ({what})")
    return index % size


# The surgeons of the other modules register themselves when imported (after Surgeon exists).
from olivine.passes import (  # noqa: E402, F401
    surgeons_embed,
    surgeons_llm,
    surgeons_memcpy,
    surgeons_norm,
    surgeons_qdq,
)
