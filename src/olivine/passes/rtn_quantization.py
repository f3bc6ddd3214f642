"""``OnnxBlockWiseRtnQuantization``: weight-only block-wise round-to-nearest quantization (int4 / int8) of
MatMul weights (to ``MatMulNBits``) and Gather embedding tables (to ``GatherBlockQuantized``).

Olive's parameter names and defaults (olive/passes/onnx/rtn_quantization.py): ``bits`` 4, ``block_size``
128, ``axis`` 0, ``is_symmetric`` true, ``accuracy_level`` 0 (unset; 1 fp32, 2 fp16, 3 bf16, 4 int8; the
names are accepted too), ``nodes_to_exclude``, ``nodes_to_include``. The quantizer is onnxruntime's
``MatMulNBitsQuantizer`` with its default (RTN) algorithm. Olive's older ``OnnxMatMul4Quantizer`` (block
size 32, ``op_types_to_quantize``, ``quant_axes``, ``algorithm``) runs the same quantizer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import field_validator

from olivine.errors import PassRunError
from olivine.model.handle import ModelHandle, walk_graphs, walk_nodes
from olivine.passes.base import PassConfig, PassContext
from olivine.passes.onnx_io import ExternalDataConfig, OnnxPass, load_onnx, write_output

_ACCURACY_LEVELS = {"unset": 0, "fp32": 1, "fp16": 2, "bf16": 3, "int8": 4}


def _accuracy_level(value: Any) -> Any:
    if isinstance(value, str) and value in _ACCURACY_LEVELS:
        return _ACCURACY_LEVELS[value]
    if value is not None and value not in _ACCURACY_LEVELS.values():
        allowed = ", ".join(f"{v} ({k})" for k, v in _ACCURACY_LEVELS.items())
        raise ValueError(f"accuracy_level must be one of {allowed}, got {value!r}")
    return value


#: The block sizes onnxruntime's block quantizer (MLAS) supports.
_BLOCK_SIZES = (16, 32, 64, 128, 256)


def _block_size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in _BLOCK_SIZES:
        raise ValueError(
            f"block_size must be one of {', '.join(map(str, _BLOCK_SIZES))} "
            f"(the block sizes onnxruntime's MatMulNBits quantizer supports), got {value!r}"
        )
    return value


class BlockWiseRtnConfig(ExternalDataConfig):
    bits: Literal[4, 8] = 4
    block_size: int = 128
    #: Olive's parameter, which its quantizer does not use either: MatMul weights are blocked along their
    #: input (K) axis, Gather tables along their last. Another value is accepted with a warning.
    axis: int = 0
    is_symmetric: bool = True
    accuracy_level: int = 0
    nodes_to_exclude: list[str] | None = None
    nodes_to_include: list[str] | None = None

    @field_validator("accuracy_level", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Any:
        return _accuracy_level(value)

    @field_validator("block_size")
    @classmethod
    def _power_of_two(cls, value: int) -> int:
        return _block_size(value)


#: Olive's ``bits_from_precision`` for this quantizer (the sign follows ``is_symmetric``).
_PRECISION_BITS = {"int4": 4, "uint4": 4, "int8": 8, "uint8": 8}


class MatMul4QuantizerConfig(ExternalDataConfig):
    """Olive <= 0.8's ``OnnxMatMul4Quantizer`` parameters (default algorithm only)."""

    #: int4 (the default) or int8 weights (Olive's ``bits_from_precision``; uint4 / uint8 say the same).
    precision: Literal["int4", "uint4", "int8", "uint8"] = "int4"
    block_size: int = 32
    is_symmetric: bool = True
    nodes_to_exclude: list[str] | None = None
    nodes_to_include: list[str] | None = None
    op_types_to_quantize: list[Literal["MatMul", "Gather"]] | None = None
    quant_axes: dict[str, int] | None = None
    accuracy_level: int | None = None
    algorithm: Literal["DEFAULT"] | None = None
    weight_only_quant_configs: dict[str, Any] | None = None
    #: Olive's calibration data for its GPTQ algorithm; the default algorithm reads no data (warned).
    data_config: str | None = None

    @field_validator("accuracy_level", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Any:
        return _accuracy_level(value)

    @field_validator("algorithm", mode="before")
    @classmethod
    def _default_algorithm(cls, value: Any) -> Any:
        if isinstance(value, str) and value.upper() != "DEFAULT":
            raise ValueError(
                f"algorithm '{value}' needs Intel Neural Compressor or a GPU-era path Olivine does not run; "
                "allowed: DEFAULT (round to nearest), or leave it unset"
            )
        return value.upper() if isinstance(value, str) else value

    @field_validator("block_size")
    @classmethod
    def _power_of_two(cls, value: int) -> int:
        return _block_size(value)

    @field_validator("quant_axes")
    @classmethod
    def _axes(cls, value: dict[str, int] | None) -> dict[str, int] | None:
        return _quant_axes(value) if value is not None else None

    @field_validator("weight_only_quant_configs")
    @classmethod
    def _known_keys(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        unknown = sorted(set(value or {}) - _WEIGHT_ONLY_KEYS)
        if unknown:
            raise ValueError(
                f"weight_only_quant_configs: unknown keys {unknown} for algorithm DEFAULT; "
                f"allowed: {', '.join(sorted(_WEIGHT_ONLY_KEYS))}"
            )
        checked = dict(value or {})  # they override the pass's own parameters of the same names, as in Olive
        checks = (
            ("op_types_to_quantize", _op_types),
            ("quant_axes", _quant_axes),
            ("block_size", _block_size),
            ("accuracy_level", _accuracy_level),
        )
        try:
            for key, check in checks:
                if key in checked:
                    checked[key] = check(checked[key])
        except ValueError as exc:
            raise ValueError(f"weight_only_quant_configs: {exc}") from exc
        if "is_symmetric" in checked and not isinstance(checked["is_symmetric"], bool):
            raise ValueError(
                "weight_only_quant_configs: is_symmetric must be true or false, "
                f"got {checked['is_symmetric']!r}"
            )
        return checked if value is not None else None


#: What Olive's default algorithm reads of weight_only_quant_configs (its _validate_weight_only_quant_config).
_WEIGHT_ONLY_KEYS = frozenset(
    {"block_size", "is_symmetric", "accuracy_level", "op_types_to_quantize", "quant_axes"}
)


def _op_types(value: Any) -> list[str]:
    if (
        not isinstance(value, list | tuple)
        or not value
        or any(op not in ("MatMul", "Gather") for op in value)
    ):
        raise ValueError(f"op_types_to_quantize: a list of MatMul and/or Gather, got {value!r}")
    return list(value)


def _quant_axes(value: Any) -> dict[str, int]:
    if not isinstance(value, dict) or any(
        op not in ("MatMul", "Gather") or isinstance(axis, bool) or not isinstance(axis, int)
        for op, axis in value.items()
    ):
        raise ValueError(f"quant_axes: a mapping of MatMul / Gather to an axis, got {value!r}")
    if value.get("MatMul", 0) != 0:
        raise ValueError(
            f"quant_axes: MatMul {value['MatMul']}: MatMulNBits blocks a MatMul weight along its input "
            "axis, 0, only"
        )
    if not -2 <= value.get("Gather", 1) <= 1:
        raise ValueError(f"quant_axes: Gather {value['Gather']}: an embedding table has 2 axes (-2 to 1)")
    return dict(value)


class OnnxBlockWiseRtnQuantization(OnnxPass):
    name: ClassVar[str] = "OnnxBlockWiseRtnQuantization"
    version: ClassVar[str] = "3"
    config_class: ClassVar[type[PassConfig]] = BlockWiseRtnConfig

    @classmethod
    def input_problem(cls, config: Any, proto: Any) -> tuple[str, str] | None:
        """``nodes_to_include`` checked against the input graph, as the run checks it."""
        unknown = _not_nodes(proto.graph, getattr(config, "nodes_to_include", None) or [])
        return ("nodes_to_include", f"{unknown} are not names of nodes in the model") if unknown else None

    def run(self, model: ModelHandle, config: Any, output_dir: Path, ctx: PassContext) -> ModelHandle:
        cfg: BlockWiseRtnConfig = config
        if cfg.axis != 0:
            ctx.logger.warning(
                "axis %d is not used (as in Olive): MatMul weights are blocked along their input axis, "
                "Gather tables along their last",
                cfg.axis,
            )
        return self._quantize(
            model,
            output_dir,
            cfg,
            ctx,
            bits=cfg.bits,
            block_size=cfg.block_size,
            is_symmetric=cfg.is_symmetric,
            accuracy_level=cfg.accuracy_level,
            op_types=("MatMul", "Gather"),
            quant_axes=(("MatMul", 0), ("Gather", 1)),
        )

    def _quantize(
        self,
        model: ModelHandle,
        output_dir: Path,
        cfg: Any,
        ctx: PassContext,
        *,
        bits: int,
        block_size: int,
        is_symmetric: bool,
        accuracy_level: int | None,
        op_types: tuple[str, ...],
        quant_axes: tuple[tuple[str, int], ...],
    ) -> ModelHandle:
        import numpy as np
        from onnxruntime.quantization.matmul_nbits_quantizer import (
            DefaultWeightOnlyQuantConfig,
            MatMulNBitsQuantizer,
        )

        proto = load_onnx(model.onnx_path)
        excluded = list(cfg.nodes_to_exclude or [])
        absent = _not_nodes(proto.graph, excluded)
        if absent:  # as static quantization: a typo would quantize the node without a word
            ctx.logger.warning("nodes_to_exclude: %s are not names of nodes in the model", absent)
        if cfg.nodes_to_include:
            # Only the nodes named are quantized, as in Olive (onnxruntime's quantizer would take them in
            # addition to every node of the op types).
            unknown = _not_nodes(proto.graph, cfg.nodes_to_include)
            if unknown:
                raise PassRunError(
                    self.name, f"nodes_to_include: {unknown} are not names of nodes in the model"
                )
            wanted = set(cfg.nodes_to_include)
            excluded += [
                n.name for n in walk_nodes(proto.graph.node) if n.op_type in op_types and n.name not in wanted
            ]
        gathers = "Gather" in op_types and _quantizable_gathers(proto, set(excluded))
        if gathers and bits != 4:
            # onnxruntime's quantizer blocks Gather weights at 4 bits only (Olive's own writes 8-bit
            # GatherBlockQuantized): say so rather than leave them float without a word.
            ctx.logger.warning(
                "bits %d: the embedding Gathers stay float (onnxruntime's block quantizer handles Gather at "
                "4 bits only); the MatMuls are quantized",
                bits,
            )
            gathers = False
        if "Gather" in op_types and not gathers:
            # onnxruntime raises the model to opset 21 whenever Gather is in the op types, Gathers or not.
            op_types = tuple(op for op in op_types if op != "Gather")
            quant_axes = tuple(axis for axis in quant_axes if axis[0] != "Gather")
        elif "Gather" in op_types:
            proto = _to_opset_21(proto, self.name)
        algo = DefaultWeightOnlyQuantConfig(
            block_size=block_size,
            is_symmetric=is_symmetric,
            accuracy_level=accuracy_level or None,
            op_types_to_quantize=op_types,
            quant_axes=quant_axes,
            bits=bits,
        )
        quantizer = MatMulNBitsQuantizer(
            proto,
            bits=bits,
            block_size=block_size,
            is_symmetric=is_symmetric,
            accuracy_level=accuracy_level or None,
            nodes_to_exclude=excluded,
            op_types_to_quantize=op_types,
            quant_axes=quant_axes,
            algo_config=algo,
        )
        try:
            # An all-zero block (e.g. a padding embedding row) divides 0 by a zero scale; it stays zero.
            with np.errstate(divide="ignore", invalid="ignore"):
                quantizer.process()
        except Exception as exc:  # the quantizer raises assorted errors on shapes it cannot block
            raise PassRunError(self.name, f"MatMulNBitsQuantizer failed on {model.onnx_path}: {exc}") from exc
        out = quantizer.model.model
        counts = {op: sum(n.op_type == op for n in out.graph.node) for op in _QUANTIZED_OPS}
        ctx.logger.info("block-wise RTN int%d (block %d): %s", bits, block_size, counts)
        return write_output(out, model, output_dir, cfg)


_QUANTIZED_OPS = ("MatMulNBits", "GatherBlockQuantized")


def _quantizable_gathers(proto: Any, excluded: set[str]) -> bool:
    """Whether a Gather (of the main graph or a subgraph) reads an initializer (what the quantizer turns
    into GatherBlockQuantized)."""
    weights = {t.name for graph in walk_graphs(proto.graph) for t in graph.initializer}
    return any(
        n.op_type == "Gather" and n.input and n.input[0] in weights and n.name not in excluded
        for n in walk_nodes(proto.graph.node)
    )


def _to_opset_21(proto: Any, pass_name: str) -> Any:
    """The model at ONNX opset 21 (int4 tensors need it; onnxruntime's quantizer only rewrites the opset
    number, so an operator whose definition changed on the way, e.g. ReduceMean's ``axes`` attribute
    becoming an input at 18, made an invalid model). Converted with onnx's version converter only when
    one of its operators changed between its opset and 21."""
    from onnx import defs

    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 21)
    if opset >= 21:
        return proto

    def fits(op_type: str, used: frozenset[str], inputs: int) -> bool:
        """Whether such a node is still a valid node of its operator at opset 21 (most changes only add
        types or optional attributes; ReduceMean's axes attribute, for one, became an input)."""
        try:
            schema = defs.get_schema(op_type, 21)
        except Exception:  # not an ONNX operator at opset 21
            return False
        required = {name for name, a in schema.attributes.items() if a.required}
        return used <= set(schema.attributes) and required <= used and schema.min_input <= inputs

    kinds = {
        (n.op_type, frozenset(a.name for a in n.attribute), len(n.input))
        for n in walk_nodes(proto.graph.node)
        if n.domain in ("", "ai.onnx")
    }
    if all(fits(*kind) for kind in kinds):
        return proto
    import onnx
    from onnx import version_converter

    try:
        converted = version_converter.convert_version(proto, 21)
        onnx.checker.check_model(converted)
    except Exception as exc:  # the converter lacks an adapter, or the graph does not check
        raise PassRunError(
            pass_name,
            f"quantizing Gather weights to int4 needs ONNX opset 21 and onnx's version converter cannot "
            f"convert this model from opset {opset} ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
            "convert the model to opset 21 first, or exclude the Gather nodes with nodes_to_exclude",
        ) from exc
    return converted


def _not_nodes(graph: Any, names: list[str]) -> list[str]:
    """The ``names`` that name no node of ``graph`` or its subgraphs."""
    if not names:
        return []
    present = {n.name for n in walk_nodes(graph.node)}
    return [n for n in names if n not in present]


class OnnxMatMul4Quantizer(OnnxBlockWiseRtnQuantization):
    """Olive <= 0.8's int4 MatMul quantizer: the same quantizer with its own parameters and defaults."""

    name: ClassVar[str] = "OnnxMatMul4Quantizer"
    config_class: ClassVar[type[PassConfig]] = MatMul4QuantizerConfig

    def run(self, model: ModelHandle, config: Any, output_dir: Path, ctx: PassContext) -> ModelHandle:
        cfg: MatMul4QuantizerConfig = config
        overrides = cfg.weight_only_quant_configs or {}
        if cfg.data_config:
            ctx.logger.warning(
                "data_config %r is not read: the default algorithm rounds the weights without data",
                cfg.data_config,
            )
        axes = {"MatMul": 0, "Gather": 1, **(cfg.quant_axes or {}), **overrides.get("quant_axes", {})}
        op_types = tuple(overrides.get("op_types_to_quantize") or cfg.op_types_to_quantize or ("MatMul",))
        return self._quantize(
            model,
            output_dir,
            cfg,
            ctx,
            bits=_PRECISION_BITS[cfg.precision],
            block_size=int(overrides.get("block_size", cfg.block_size)),
            is_symmetric=bool(overrides.get("is_symmetric", cfg.is_symmetric)),
            accuracy_level=_accuracy_level(overrides.get("accuracy_level", cfg.accuracy_level)),
            op_types=op_types,
            quant_axes=tuple((op, axes[op]) for op in op_types),
        )
