"""``OnnxFloatToFloat16``: float32 weights and operators to float16 with onnxruntime's float16 converter.

Olive's parameter names and defaults (olive/passes/onnx/float16_conversion.py): ``keep_io_types`` false
(a list keeps the named inputs/outputs float32), ``op_block_list`` / ``op_include_list``,
``node_block_list`` / ``node_include_list`` (each pair mutually exclusive), ``min_positive_val`` 1e-7 and
``max_finite_val`` 1e4 (constants are clipped to them), ``use_symbolic_shape_infer`` true.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import onnx
from pydantic import model_validator

from olivine.errors import ConfigError, PassRunError
from olivine.model.handle import ModelHandle, walk_nodes
from olivine.passes.base import PassConfig, PassContext
from olivine.passes.onnx_io import ExternalDataConfig, OnnxPass, load_onnx, write_output

_FP16_SMALLEST = 5.96e-08
_FP16_LARGEST = 65504.0


class OnnxFloatToFloat16Config(ExternalDataConfig):
    min_positive_val: float = 1e-7
    max_finite_val: float = 1e4
    keep_io_types: bool | list[str] = False
    use_symbolic_shape_infer: bool = True
    op_block_list: list[str] | None = None
    op_include_list: list[str] | None = None
    node_block_list: list[str] | None = None
    node_include_list: list[str] | None = None

    @model_validator(mode="after")
    def _exclusive_lists(self) -> OnnxFloatToFloat16Config:
        if self.op_include_list and self.op_block_list is not None:
            raise ValueError("op_include_list and op_block_list are mutually exclusive; give one")
        if self.node_include_list and self.node_block_list is not None:
            raise ValueError("node_include_list and node_block_list are mutually exclusive; give one")
        # onnxruntime's converter asserts the same bounds when it runs.
        if not _FP16_SMALLEST <= self.min_positive_val < self.max_finite_val <= _FP16_LARGEST:
            raise ValueError(
                f"min_positive_val and max_finite_val must satisfy {_FP16_SMALLEST:g} (the smallest "
                f"float16 subnormal) <= min_positive_val < max_finite_val <= {_FP16_LARGEST:g} (the largest "
                f"float16), got {self.min_positive_val:g} and {self.max_finite_val:g}"
            )
        return self


class OnnxFloatToFloat16(OnnxPass):
    name: ClassVar[str] = "OnnxFloatToFloat16"
    version: ClassVar[str] = "2"
    config_class: ClassVar[type[PassConfig]] = OnnxFloatToFloat16Config

    @classmethod
    def input_problem(cls, config: Any, proto: Any) -> tuple[str, str] | None:
        """Node and input/output names checked on the input graph, as the run checks them."""
        try:
            _block_lists(config, proto)
        except ConfigError as exc:
            return exc.path, exc.message
        except Exception:  # unnamed nodes for an include list, ...: said when it runs
            return None
        return None

    def run(self, model: ModelHandle, config: Any, output_dir: Path, ctx: PassContext) -> ModelHandle:
        from onnxruntime.transformers.onnx_model import OnnxModel

        cfg: OnnxFloatToFloat16Config = config
        proto = load_onnx(model.onnx_path)
        op_block_list, node_block_list = _block_lists(cfg, proto)
        passthrough = _outputs_without_producer(proto, cfg.keep_io_types)
        ort_model = OnnxModel(proto)
        try:
            ort_model.convert_float_to_float16(
                use_symbolic_shape_infer=cfg.use_symbolic_shape_infer,
                keep_io_types=cfg.keep_io_types,
                op_block_list=op_block_list,
                node_block_list=node_block_list,
                min_positive_val=cfg.min_positive_val,
                max_finite_val=cfg.max_finite_val,
            )
            # The Casts the converter adds at the inputs come after their consumers; onnxruntime needs order.
            ort_model.topological_sort()
        except Exception as exc:  # the converter raises assorted errors on graphs it cannot type
            raise PassRunError(self.name, f"float16 conversion failed on {model.onnx_path}: {exc}") from exc
        for index, output in passthrough:  # an input kept float32 is the same float32 output
            ort_model.model.graph.output.insert(index, output)
        refused = _float16_qdq_scales(ort_model.model)
        if refused:
            raise PassRunError(self.name, refused)
        return write_output(ort_model.model, model, output_dir, cfg)


def _outputs_without_producer(proto: Any, keep_io_types: bool | list[str]) -> list[tuple[int, Any]]:
    """Make every float32 output that ``keep_io_types`` keeps float32 one that a node writes.

    onnxruntime's converter gives each kept output a Cast from the tensor a node writes under that name; an
    initializer or an input wired straight to an output has no such node, and the converter wrote a Cast
    whose input nothing produces ("Graph is not a DAG"). An initializer gets an Identity in front (it is
    renamed, its readers follow); an input that is also an output (kept float32 as an input too) is taken
    out of the outputs and returned with its place, to be put back after the conversion.
    """
    graph = proto.graph
    kept = [
        (index, output)
        for index, output in enumerate(graph.output)
        if output.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        and (keep_io_types is True or (isinstance(keep_io_types, list) and output.name in keep_io_types))
    ]
    written = {name for node in graph.node for name in node.output}
    inputs = {value.name for value in graph.input}
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    used = {name for node in walk_nodes(graph.node) for name in [*node.input, *node.output]}
    used |= inputs | set(initializers) | {value.name for value in graph.output}
    passthrough: list[tuple[int, Any]] = []
    for index, output in reversed(kept):
        if output.name in written:
            continue
        if output.name in inputs:
            passthrough.insert(0, (index, onnx.ValueInfoProto.FromString(output.SerializeToString())))
            del graph.output[index]
        elif output.name in initializers:
            source = output.name + "_source"
            while source in used:
                source += "_"
            used.add(source)
            _rename_reads(graph, output.name, source)
            initializers[output.name].name = source
            graph.node.insert(0, onnx.helper.make_node("Identity", [source], [output.name]))
    return passthrough


def _rename_reads(graph: Any, old: str, new: str) -> None:
    """Nodes of ``graph`` and of its subgraphs that read ``old`` read ``new`` instead (a subgraph with its
    own ``old`` keeps reading it)."""
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
        for attribute in node.attribute:
            subgraphs = [attribute.g] if attribute.HasField("g") else []
            for sub in [*subgraphs, *attribute.graphs]:
                own = {value.name for value in [*sub.input, *sub.initializer]}
                own |= {name for inner in sub.node for name in inner.output}
                if old not in own:
                    _rename_reads(sub, old, new)


_QDQ = ("QuantizeLinear", "DequantizeLinear")


def _float16_qdq_scales(proto: Any) -> str | None:
    """Why the converted model cannot load when its QuantizeLinear/DequantizeLinear nodes took float16
    scales below opset 19 (a quantized model converted after quantization), else None."""
    from onnx import TensorProto

    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset >= 19:
        return None
    half = {t.name for t in proto.graph.initializer if t.data_type == TensorProto.FLOAT16}
    nodes = [n for n in proto.graph.node if n.op_type in _QDQ and len(n.input) > 1 and n.input[1] in half]
    if not nodes:
        return None
    return (
        f"{len(nodes)} QuantizeLinear/DequantizeLinear node(s) (e.g. '{nodes[0].name or nodes[0].op_type}') "
        f"would take float16 scales, which these operators accept from opset 19 only (the model's is "
        f"{opset}): add QuantizeLinear and DequantizeLinear to op_block_list, or convert to float16 "
        "before quantizing"
    )


def _block_lists(cfg: OnnxFloatToFloat16Config, proto: Any) -> tuple[list[str] | None, list[str] | None]:
    """Include lists become block lists of everything else (the converter only takes block lists)."""
    op_block_list, node_block_list = cfg.op_block_list, cfg.node_block_list
    nodes = list(proto.graph.node)
    names = {node.name for node in walk_nodes(proto.graph.node)}  # the main graph's and every subgraph's
    for key in ("node_include_list", "node_block_list"):
        unknown = [n for n in getattr(cfg, key) or [] if n not in names]
        if unknown:  # a typo would convert (or keep) the whole model without a word
            raise ConfigError(f"{unknown} are not names of nodes in the model", path=key)
    if isinstance(cfg.keep_io_types, list):
        io_names = {v.name for v in [*proto.graph.input, *proto.graph.output]}
        unknown = [n for n in cfg.keep_io_types if n not in io_names]
        if unknown:
            raise ConfigError(
                f"{unknown} are not inputs or outputs of the model (they are: {sorted(io_names)})",
                path="keep_io_types",
            )
    if cfg.op_include_list:  # an empty include list is no list, as in Olive (it converts everything)
        op_block_list = sorted({n.op_type for n in nodes if n.op_type not in cfg.op_include_list})
    if cfg.node_include_list:
        if any(not n.name for n in nodes):
            raise PassRunError(
                "OnnxFloatToFloat16",
                "node_include_list needs every node to have a name and this model has unnamed nodes; "
                "use node_block_list",
            )
        node_block_list = [n.name for n in nodes if n.name not in cfg.node_include_list]
    return op_block_list, node_block_list
