"""``OrtTransformersOptimization``: onnxruntime's transformer optimizer (operator fusion) on an ONNX model.

Olive's parameter names and defaults (olive/passes/onnx/transformer_optimization.py, olive-ai 0.13).
``model_type``, ``num_heads`` and ``hidden_size`` default from the input model's attributes (the HF config
that ``OnnxConversion`` records). The fused operator counts are logged and stored in the output model's
``model_attributes["fused_ops"]``: fusion is what makes the optimized graph fast, and it fails silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import model_validator

from olivine.config.model import OLIVE_ALIASES
from olivine.errors import ConfigError, PassRunError
from olivine.model.handle import ModelHandle, ModelKind
from olivine.passes.base import PassConfig, PassContext
from olivine.passes.onnx_io import (
    ExternalDataConfig,
    OnnxPass,
    load_onnx,
    onnx_output_handle,
    save_onnx_model,
    write_output,
)

# Olive's MODEL_TYPE_MAPPING: HF model types the optimizer knows under another name.
_MODEL_TYPE_MAPPING = {
    "camembert": "bert",
    "deberta": "bert",
    "deberta-v2": "bert",
    "distilbert": "bert",
    "gpt_neox": "gpt2",
    "gpt-j": "gpt2",
    "llama": "gpt2",
    "roberta": "bert",
    "phi3": "phi",
}
# Fused operators worth a line in the log even when they are absent (a missing Attention means no speed-up).
_KEY_FUSIONS = ("Attention", "EmbedLayerNormalization", "SkipLayerNormalization")


class OrtTransformersOptimizationConfig(ExternalDataConfig):
    """Olive's ``OrtTransformersOptimization`` parameters (CPU: ``use_gpu`` and ``use_gqa`` are rejected)."""

    model_type: str | None = None
    num_heads: int = 0
    num_key_value_heads: int = 0
    hidden_size: int = 0
    optimization_options: dict[str, Any] | None = None
    opt_level: Literal[0, 1, 2, 99] | None = None
    use_gpu: bool = False
    only_onnxruntime: bool = False
    float16: bool = False
    keep_io_types: bool = True
    force_fp32_ops: list[str] | None = None
    force_fp32_nodes: list[str] | None = None
    force_fp16_inputs: dict[str, list[int]] | None = None
    use_gqa: bool = False
    input_int32: bool = False

    @model_validator(mode="after")
    def _cpu_only(self) -> OrtTransformersOptimizationConfig:
        if self.use_gpu:
            raise ValueError("use_gpu: Olivine optimizes for the CPU execution provider only")
        if self.use_gqa:
            raise ValueError(
                "use_gqa (GroupQueryAttention, float16 GPU decoders) is not supported by Olivine"
            )
        if self.only_onnxruntime and not self.opt_level:
            raise ValueError("only_onnxruntime needs a positive opt_level (1, 2 or 99)")
        if self.num_heads < 0 or self.hidden_size < 0 or self.num_key_value_heads < 0:
            raise ValueError(
                "num_heads, num_key_value_heads and hidden_size must be >= 0 (0 = from the model)"
            )
        if self.model_type:
            from onnxruntime.transformers.optimizer import MODEL_TYPES

            if self.model_type not in MODEL_TYPES:
                # Olive skips the pass with a warning; a model_type written in the config is a typo to
                # name before anything runs (one inferred from the model is skipped, as in Olive).
                raise ValueError(
                    f"model_type: '{self.model_type}' is not one onnxruntime's transformer optimizer knows; "
                    f'allowed: {", ".join(MODEL_TYPES)} (or "" to skip the pass)'
                )
        if self.optimization_options:
            # Checked here so that --dry-run refuses what the run would refuse; the keys do not depend
            # on the model type.
            try:
                _fusion_options(self.model_type or "bert", self.optimization_options)
            except ConfigError as exc:
                raise ValueError(f"{exc.path}: {exc.message}") from None
        return self


class OrtTransformersOptimization(OnnxPass):
    """Fuse attention, layer norms and GELU into onnxruntime's contrib operators."""

    name: ClassVar[str] = "OrtTransformersOptimization"
    version: ClassVar[str] = "2"
    config_class: ClassVar[type[PassConfig]] = OrtTransformersOptimizationConfig
    accepts: ClassVar[tuple[ModelKind, ...]] = ("onnx",)
    # Olive's OrtTransformersOptimization declares no search_defaults: nothing is searched unless a
    # config lists choices.
    search_values: ClassVar[Mapping[str, tuple[Any, ...]]] = {}
    libraries: ClassVar[tuple[str, ...]] = ("onnx", "onnxruntime")

    @classmethod
    def invalid_reason(cls, config: Any, accelerator: Any) -> str | None:
        if config.float16:  # Olivine's target is always the CPU execution provider
            return (
                "float16: true makes a float16 model for a GPU; onnxruntime's CPU execution provider runs "
                "float16 poorly and Olive refuses it on a CPU target too (OnnxFloatToFloat16 converts a "
                "model to float16 if that is what you want)"
            )
        return None

    def run(self, model: ModelHandle, config: Any, output_dir: Path, ctx: PassContext) -> ModelHandle:
        """Optimize ``model``; record the fused operator counts in the output's ``model_attributes``."""
        from onnxruntime.transformers import optimizer as ort_optimizer

        cfg: OrtTransformersOptimizationConfig = config
        model_type, num_heads, hidden_size = _resolve_shape_params(cfg, model.attributes, ctx.logger)
        if not model_type:
            # Olive skips the pass then (recipes set model_type "" on purpose); so does Olivine, saying so.
            ctx.logger.warning(
                "model_type is not set and the input model's attributes name none: the pass is skipped, "
                "as in Olive; the model passes through unchanged (set model_type, e.g. 'bert', to optimize)"
            )
            return write_output(load_onnx(model.onnx_path), model, output_dir, cfg)
        source = model.onnx_path
        if model_type not in ort_optimizer.MODEL_TYPES:  # inferred from the model (a set one is checked)
            ctx.logger.warning(
                "the input model's type '%s' is not one onnxruntime's transformer optimizer knows: the pass "
                "is skipped, as in Olive; the model passes through unchanged (set model_type, e.g. 'bert', "
                "to optimize it as that family)",
                model_type,
            )
            return write_output(load_onnx(source), model, output_dir, cfg)
        if model_type == "phi" and not _has_functions(source):
            # Olive's rule: the phi optimizer reads the functions of a dynamo export; another export
            # (TorchScript, or dynamo with functions inlined) is optimized as bert.
            ctx.logger.info("model_type phi without ONNX functions (not a dynamo export): optimized as bert")
            model_type = "bert"
        options = _fusion_options(model_type, cfg.optimization_options)
        try:
            optimized = ort_optimizer.optimize_model(
                input=str(source),
                model_type=model_type,
                num_heads=num_heads,
                hidden_size=hidden_size,
                optimization_options=options,
                opt_level=cfg.opt_level,
                use_gpu=False,
                only_onnxruntime=cfg.only_onnxruntime,
            )
            if cfg.float16:
                optimized.convert_float_to_float16(
                    keep_io_types=cfg.keep_io_types,
                    op_block_list=cfg.force_fp32_ops,
                    node_block_list=cfg.force_fp32_nodes,
                    force_fp16_inputs=cfg.force_fp16_inputs,
                )
            if cfg.input_int32:
                optimized.change_graph_inputs_to_int32()
            # Later rewrites may leave nodes out of order; onnxruntime needs a sorted graph.
            optimized.topological_sort()
            fused = {k: int(v) for k, v in optimized.get_fused_operator_statistics().items()}
        except Exception as exc:  # the optimizer raises assorted errors from deep in its fusions
            raise PassRunError(
                self.name,
                f"onnxruntime transformer optimizer (model_type '{model_type}') failed on {source}: "
                f"{type(exc).__name__}: {str(exc).strip() or 'no message'}{_raised_in(exc)}; its fusions may "
                "not match this graph "
                "(only_onnxruntime: true with an opt_level runs onnxruntime's own graph optimizations "
                "instead)",
            ) from exc
        _log_fusions(ctx, model_type, fused)
        save_onnx_model(optimized.model, output_dir / source.name, cfg)
        attributes = {**model.attributes, "fused_ops": fused}
        return onnx_output_handle(model, output_dir, source.name, attributes)


def _has_functions(path: Path) -> bool:
    import onnx

    return bool(onnx.load(str(path), load_external_data=False).functions)


#: Olive's aliases (olive/assets/io_configs/defaults.yaml) for the head count and hidden size; an
#: encoder-decoder's encoder head count counts too, as in Olive.
_HEAD_KEYS = (*OLIVE_ALIASES["num_attention_heads"], "encoder_attention_heads")
_HIDDEN_KEYS = OLIVE_ALIASES["hidden_size"]


def _model_number(attributes: dict[str, Any], keys: tuple[str, ...]) -> tuple[int, Any]:
    """The first of ``keys`` the model's attributes give: (its value if a positive whole number else 0,
    the value as given, None when no key is there)."""
    for key in keys:
        value = attributes.get(key)
        if value is None:
            continue
        number = value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
        return number, value
    return 0, None


def _resolve_shape_params(
    cfg: OrtTransformersOptimizationConfig, attributes: dict[str, Any], logger: Any = None
) -> tuple[str, int, int]:
    """model_type / num_heads / hidden_size: from the pass config, else from the model's attributes
    (model_type "" when neither names one).

    onnxruntime's optimizer takes both numbers or neither (0 and 0: it reads them from the graph); with
    one alone, or a hidden size that is not a multiple of the head count, it fails a bare assertion. So
    numbers from the model are used only as a consistent pair (a config with one head count per stage,
    as SegFormer's, Swin's and LeViT's lists, gives none), and a pair given in the pass config is checked.
    """
    model_type = cfg.model_type or ""
    if not model_type and attributes.get("model_type"):
        hf_type = str(attributes["model_type"])
        model_type = _MODEL_TYPE_MAPPING.get(hf_type, hf_type)
    from_model = model_type != "clip"  # as in Olive: a CLIP config's numbers are its text tower's
    heads, heads_given = _model_number(attributes, _HEAD_KEYS) if from_model else (0, None)
    hidden, hidden_given = _model_number(attributes, _HIDDEN_KEYS) if from_model else (0, None)
    num_heads = cfg.num_heads or heads
    hidden_size = cfg.hidden_size or hidden
    if num_heads and hidden_size and hidden_size % num_heads == 0:
        return model_type, num_heads, hidden_size
    if cfg.num_heads and cfg.hidden_size:
        raise ConfigError(
            f"hidden_size {cfg.hidden_size} is not a multiple of num_heads {cfg.num_heads}",
            path="hidden_size",
        )
    if cfg.num_heads or cfg.hidden_size:
        given, other = ("num_heads", "hidden_size") if cfg.num_heads else ("hidden_size", "num_heads")
        raise ConfigError(
            f"{given} is set but {other} is not, and the model's config gives no usable {other} "
            f"(head count {heads_given!r}, hidden size {hidden_given!r}): set both, or neither to let "
            "onnxruntime read them from the graph",
            path=other,
        )
    if (num_heads or hidden_size or heads_given or hidden_given) and logger is not None:
        logger.info(
            "the model's config gives no usable head count / hidden size pair (%r / %r): onnxruntime's "
            "optimizer reads them from the graph (num_heads 0, hidden_size 0)",
            heads_given,
            hidden_given,
        )
    return model_type, 0, 0


def _fusion_options(model_type: str, options: dict[str, Any] | None) -> Any:
    """onnxruntime ``FusionOptions`` for ``model_type`` with the user's overrides (unknown keys rejected)."""
    if not options:
        return None
    from onnxruntime.transformers.fusion_options import AttentionOpType, FusionOptions

    fusion = FusionOptions(model_type)
    # FusionOptions has some keys only for some model types (unet's enable_group_norm, ...); Olive sets
    # the user's keys whatever the type (fusion_options.__dict__.update), so any type's key is accepted.
    defaults = {**_fusion_defaults(), **vars(fusion)}
    known = set(defaults)
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(
            f"unknown optimization_options {unknown}; allowed: {', '.join(sorted(known))}",
            path="optimization_options",
        )
    for key, value in options.items():
        if key == "attention_op_type":
            try:
                fusion.set_attention_op_type(AttentionOpType(value))
            except ValueError:
                allowed = ", ".join(t.value for t in AttentionOpType)
                raise ConfigError(
                    f"unknown attention_op_type '{value}'; allowed: {allowed}",
                    path="optimization_options.attention_op_type",
                ) from None
        else:
            setattr(fusion, key, _typed_option(key, value, defaults[key]))
    return fusion


def _typed_option(key: str, value: Any, default: Any) -> Any:
    """``value`` as the type of the option's default: a string "false" set as is would switch a fusion on."""
    from pydantic import TypeAdapter, ValidationError

    kind: type[Any]
    if isinstance(default, bool):
        kind, allowed = bool, "true or false"
    elif isinstance(default, int):
        kind, allowed = int, "an integer"
    else:
        return value
    choices: dict[int, str] = {}
    if key == "attention_mask_format":  # a plain class of int constants in onnxruntime
        from onnxruntime.transformers.fusion_options import AttentionMaskFormat

        choices = {v: k for k, v in vars(AttentionMaskFormat).items() if isinstance(v, int)}
        allowed = ", ".join(f"{v} ({k})" for v, k in sorted(choices.items()))
    try:
        if isinstance(value, float) or (kind is not bool and isinstance(value, bool)):
            raise ValueError(value)
        typed = TypeAdapter(kind).validate_python(value)
        if choices and typed not in choices:
            raise ValueError(value)
        return typed
    except (ValidationError, ValueError):
        raise ConfigError(f"must be {allowed}, got {value!r}", path=f"optimization_options.{key}") from None


def _all_fusion_keys() -> set[str]:
    return set(_fusion_defaults())


def _fusion_defaults() -> dict[str, Any]:
    """Every FusionOptions key of any model type, with its default (which gives its type)."""
    from onnxruntime.transformers import optimizer as ort_optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    defaults: dict[str, Any] = {}
    for model_type in ort_optimizer.MODEL_TYPES:
        for key, value in vars(FusionOptions(model_type)).items():
            defaults.setdefault(key, value)
    return defaults


def _log_fusions(ctx: PassContext, model_type: str, fused: dict[str, int]) -> None:
    present = {k: v for k, v in fused.items() if v}
    summary = ", ".join(f"{k}={v}" for k, v in sorted(present.items())) or "none"
    ctx.logger.info("transformer optimizer (%s) fused: %s", model_type, summary)
    missing = [k for k in _KEY_FUSIONS if k in fused and not fused[k]]
    if fused.get("MultiHeadAttention"):
        missing = [k for k in missing if k != "Attention"]
    if missing and model_type == "bert":
        ctx.logger.warning("no %s fused: the optimized model will not be faster", "/".join(missing))


def _raised_in(exc: BaseException) -> str:
    """Where in the library ``exc`` was raised (`` (in onnxruntime/transformers/x.py, f)``), or ""."""
    tb, last = exc.__traceback__, None
    while tb is not None:
        last, tb = tb, tb.tb_next
    if last is None:
        return ""
    code = last.tb_frame.f_code
    parts = Path(code.co_filename).parts
    where = "/".join(parts[parts.index("onnxruntime") :]) if "onnxruntime" in parts else parts[-1]
    return f" (in {where}, {code.co_name})"
