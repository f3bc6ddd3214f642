"""``OnnxDynamicQuantization``: onnxruntime's dynamic (weight int8, activations quantized at run time).

Olive's parameter names and defaults (olive/passes/onnx/quantization.py, olive-ai 0.13): ``precision``
``int8`` | ``uint8``, ``quant_preprocess`` on by default. Configs written for Olive <= 0.8 used
``weight_type`` (``QInt8`` | ``QUInt8``) and top-level extra options such as ``MatMulConstBOnly``; both
are still read.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import model_validator

from olivine.errors import PassRunError
from olivine.model.handle import ModelHandle, ModelKind
from olivine.passes.base import Pass, PassConfig, PassContext
from olivine.passes.onnx_conversion import ExternalDataConfig, onnx_output_handle, publish_onnx_file

_LEGACY_WEIGHT_TYPES = {"QInt8": "int8", "QUInt8": "uint8"}
# Olive 0.8 exposed these extra options as top-level parameters.
_LEGACY_EXTRA_OPTIONS = (
    "extra.Sigmoid.nnapi",
    "ActivationSymmetric",
    "WeightSymmetric",
    "EnableSubgraph",
    "ForceQuantizeNoInputCheck",
    "MatMulConstBOnly",
)
# extra_options keys that a parameter of the pass sets (Olive's _param_extra_options_mapping, dynamic part).
_PARAM_EXTRA_OPTIONS = {"ActivationSymmetric": "activation_symmetric", "WeightSymmetric": "weight_symmetric"}


class OnnxDynamicQuantizationConfig(ExternalDataConfig):
    """Olive's ``OnnxDynamicQuantization`` parameters."""

    quant_mode: Literal["dynamic"] = "dynamic"
    precision: Literal["int8", "uint8"] = "int8"
    op_types_to_quantize: list[str] | None = None
    op_types_to_exclude: list[str] | None = None
    nodes_to_quantize: list[str] | None = None
    nodes_to_exclude: list[str] | None = None
    per_channel: bool = False
    reduce_range: bool = False
    quant_preprocess: bool = True
    activation_symmetric: bool = False
    weight_symmetric: bool | None = None
    extra_options: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _legacy_names(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        out = dict(value)
        if "weight_type" in out:
            weight_type = out.pop("weight_type")
            if weight_type not in _LEGACY_WEIGHT_TYPES:
                raise ValueError(
                    f"weight_type must be one of {', '.join(_LEGACY_WEIGHT_TYPES)}, got {weight_type!r}"
                )
            if "precision" in out and out["precision"] != _LEGACY_WEIGHT_TYPES[weight_type]:
                raise ValueError("weight_type (Olive <= 0.8) and precision disagree; give only precision")
            out["precision"] = _LEGACY_WEIGHT_TYPES[weight_type]
        legacy = {k: out.pop(k) for k in _LEGACY_EXTRA_OPTIONS if k in out}
        for key, param in _PARAM_EXTRA_OPTIONS.items():
            if key in legacy:
                out.setdefault(param, legacy.pop(key))
        if legacy:
            out["extra_options"] = {**legacy, **dict(out.get("extra_options") or {})}
        return out


class OnnxDynamicQuantization(Pass):
    """Quantize weights to 8 bits; activations are quantized at run time (no calibration data)."""

    name: ClassVar[str] = "OnnxDynamicQuantization"
    version: ClassVar[str] = "1"
    config_class: ClassVar[type[PassConfig]] = OnnxDynamicQuantizationConfig
    accepts: ClassVar[tuple[ModelKind, ...]] = ("onnx",)
    libraries: ClassVar[tuple[str, ...]] = ("onnx", "onnxruntime")
    #: Olive's search_defaults (olive/passes/onnx/quantization.py: precision, per_channel, reduce_range,
    #: quant_preprocess); ``weight_type`` is Olive <= 0.8's name for precision.
    search_values: ClassVar[Mapping[str, tuple[Any, ...]]] = {
        "precision": ("int8", "uint8"),
        "per_channel": (True, False),
        "reduce_range": (True, False),
        "quant_preprocess": (True, False),
        "weight_type": ("QInt8", "QUInt8"),
    }

    def run(self, model: ModelHandle, config: Any, output_dir: Path, ctx: PassContext) -> ModelHandle:
        """Write the quantized model under ``output_dir`` with the input model's file name."""
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        cfg: OnnxDynamicQuantizationConfig = config
        source = model.onnx_path
        with tempfile.TemporaryDirectory(prefix="olivine-quant-") as tmp:
            tmp_dir = Path(tmp)
            quant_input = _preprocess(source, tmp_dir, ctx) if cfg.quant_preprocess else source
            graph_nodes = onnx.load(str(quant_input), load_external_data=False).graph.node
            nodes_to_quantize, nodes_to_exclude = _node_lists(cfg, graph_nodes, ctx)
            output = tmp_dir / "quantized.onnx"
            try:
                quantize_dynamic(
                    model_input=str(quant_input),
                    model_output=str(output),
                    op_types_to_quantize=cfg.op_types_to_quantize,
                    per_channel=cfg.per_channel,
                    reduce_range=cfg.reduce_range,
                    weight_type=QuantType.QInt8 if cfg.precision == "int8" else QuantType.QUInt8,
                    nodes_to_quantize=nodes_to_quantize,
                    nodes_to_exclude=nodes_to_exclude,
                    # External in the temp folder unless the model is far from the 2 GB protobuf limit;
                    # a single file is then moved into place without another load and save.
                    use_external_data_format=_model_bytes(source) >= _SINGLE_FILE_BYTES,
                    extra_options=_extra_options(cfg, ctx),
                )
            except Exception as exc:  # onnxruntime.quantization raises ValueError, AttributeError, ...
                raise PassRunError(self.name, f"quantize_dynamic failed on {source}: {exc}") from exc
            proto = publish_onnx_file(output, output_dir / source.name, cfg)
        counts = _quantized_op_counts(proto)
        ctx.logger.info("dynamic quantization (%s): %s", cfg.precision, counts or "no quantized operators")
        return onnx_output_handle(model, output_dir, source.name, model.attributes)


#: Models whose files (graph + external data) are below this quantize straight into one file.
_SINGLE_FILE_BYTES = 1 << 30


def _model_bytes(onnx_file: Path) -> int:
    """The bytes of an ONNX model folder: the graph file and every file beside it (its external data)."""
    return sum(p.stat().st_size for p in onnx_file.parent.iterdir() if p.is_file())


def _preprocess(source: Path, tmp_dir: Path, ctx: PassContext) -> Path:
    """onnxruntime's quantization pre-processing (shape inference + optimization), on by default in Olive.

    On failure the original model is quantized instead, with a warning (Olive does the same).
    """
    from onnxruntime.quantization.preprocess import quant_pre_process

    target = tmp_dir / "preprocessed.onnx"
    try:
        quant_pre_process(
            input_model=str(source),
            output_model_path=str(target),
            auto_merge=True,
            save_as_external_data=True,
            all_tensors_to_one_file=True,
        )
    except Exception as exc:  # symbolic shape inference fails on some graphs; quantizing still works
        ctx.logger.warning("quantization pre-processing failed (%s); quantizing the model as is", exc)
        return source
    return target


def _node_lists(cfg: OnnxDynamicQuantizationConfig, nodes: Any, ctx: PassContext) -> tuple[Any, list[str]]:
    """``nodes_to_quantize`` and ``nodes_to_exclude`` as names in the graph being quantized.

    Pre-processing renames the nodes it fuses (``fc1/MatMul`` -> ``fc1/MatMul/MatMulAddFusion``), so a name
    from the input model also selects the nodes derived from it, including the halves of a split Gemm.
    Excluded op types become node names: the quantizer itself has no op-type exclusion.
    """
    ops = {n.name: n.op_type for n in nodes}
    unknown: list[str] = []

    def resolve(given: list[str]) -> list[str]:
        out: list[str] = []
        for name in given:
            matches = [n for n in ops if n == name or n.startswith(f"{name}/")]
            if not matches:
                unknown.append(name)
            out += matches or [name]
            # Dynamic quantization splits a Gemm into "<name>_MatMul" + "<name>_Add" before it selects nodes.
            out += [f"{m}{suffix}" for m in matches if ops[m] == "Gemm" for suffix in ("_MatMul", "_Add")]
        return out

    to_quantize = resolve(cfg.nodes_to_quantize) if cfg.nodes_to_quantize else None
    to_exclude = resolve(cfg.nodes_to_exclude or [])
    if unknown:
        ctx.logger.warning("node names not in the model (ignored): %s", ", ".join(unknown))
    if cfg.op_types_to_exclude:
        to_exclude += [n.name for n in nodes if n.op_type in cfg.op_types_to_exclude]
    return to_quantize, to_exclude


def _extra_options(cfg: OnnxDynamicQuantizationConfig, ctx: PassContext) -> dict[str, Any]:
    """``extra_options`` with the symmetric flags set from their parameters.

    A parameter left at its default does not override the same key written in ``extra_options`` (Olive
    overrides it and warns; keeping the explicit value is what the user meant).
    """
    options = dict(cfg.extra_options or {})
    for key, param in _PARAM_EXTRA_OPTIONS.items():
        value = getattr(cfg, param)
        if value is None or (key in options and param not in cfg.model_fields_set):
            continue
        if key in options and options[key] != value:
            ctx.logger.warning(
                "extra_options.%s is overridden by the pass parameter %s=%s", key, param, value
            )
        options[key] = value
    return options


def _quantized_op_counts(proto: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in proto.graph.node:
        if "Integer" in node.op_type or node.op_type in (
            "DynamicQuantizeLinear",
            "QAttention",
            "QEmbedLayerNormalization",
        ):
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts
