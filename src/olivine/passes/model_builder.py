"""``ModelBuilder``: onnxruntime-genai's model builder, a Hugging Face causal LM folder to an ONNX model
plus the ``genai_config.json`` and tokenizer files that onnxruntime-genai's generator loads.

Olive's parameter names, defaults and search values (olive/passes/onnx/model_builder.py): ``precision``
(fp32 by default), ``metadata_only`` (an existing ONNX model gets the genai config only), ``search``
(merged into the generated config's ``search`` block), the ``int4_*`` quantization options, the
``exclude_*`` / ``include_hidden_states`` switches and free-form ``extra_options``. Like Olive, every set
option is handed to the builder's own ``check_extra_options`` so the builder stays the one owner of what
an option means. Which keys exist is checked at config time against the pinned builder's list: the builder
ignores an unknown key without a word, and Olive passes it on.

The builder is pinned to onnxruntime-genai 0.15.2, the newest release whose builder imports with
transformers 4.x (0.16 and later import classes that exist only in transformers 5; see the ``genai``
extra in pyproject.toml).
"""

from __future__ import annotations

import contextlib
import difflib
import io
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import ValidationInfo, field_validator, model_validator

from olivine.errors import PassRunError
from olivine.model.accelerator import Accelerator
from olivine.model.handle import ModelHandle, ModelKind
from olivine.passes.base import Pass, PassConfig, PassContext
from olivine.passes.model_builder_support import architecture_problem

ONNX_FILE_NAME = "model.onnx"
GENAI_CONFIG = "genai_config.json"

# Olive's EP_MAP: the builder's name for each execution provider.
_EP_NAMES = {
    "CPUExecutionProvider": "cpu",
    "CUDAExecutionProvider": "cuda",
    "DmlExecutionProvider": "dml",
    "WebGpuExecutionProvider": "webgpu",
    "JsExecutionProvider": "web",
    "NvTensorRTRTXExecutionProvider": "NvTensorRtRtx",
}
# Options that only mean something on a GPU execution provider (refused on a CPU target).
_GPU_ONLY = {
    "use_cuda_bf16": "BF16 I/O applies to the CUDA execution provider",
    "enable_cuda_graph": "CUDA graph capture applies to the CUDA execution provider",
    "use_webgpu_fp32": "applies to the WebGPU execution provider",
}
# Olive passes list-valued options as the joined strings the builder's command line produces.
_LIST_SEPARATORS = {"op_types_to_quantize": "/", "nodes_to_exclude": ","}
# The keys of the generated config's "search" block (onnxruntime-genai's generator search options).
SEARCH_KEYS = frozenset(
    {
        "diversity_penalty",
        "do_sample",
        "early_stopping",
        "length_penalty",
        "max_length",
        "min_length",
        "no_repeat_ngram_size",
        "num_beams",
        "num_return_sequences",
        "past_present_share_buffer",
        "random_seed",
        "repetition_penalty",
        "temperature",
        "top_k",
        "top_p",
    }
)
# Generator search options: booleans, whole numbers and real numbers (onnxruntime-genai's config types).
_SEARCH_BOOLS = frozenset({"do_sample", "early_stopping", "past_present_share_buffer"})
_SEARCH_INTS = {  # the smallest value each takes
    "max_length": 1,
    "min_length": 0,
    "num_beams": 1,
    "num_return_sequences": 1,
    "no_repeat_ngram_size": 0,
    "top_k": 0,
    "random_seed": -1,
}


def _search_value_problem(key: str, value: Any) -> str | None:
    if key in _SEARCH_BOOLS:
        return None if isinstance(value, bool) else "must be true or false"
    if key in _SEARCH_INTS:
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be a whole number"
        return None if value >= _SEARCH_INTS[key] else f"must be >= {_SEARCH_INTS[key]}"
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return "must be a number"
    if key == "top_p" and not 0 < value <= 1:
        return "must be in (0, 1]"
    if key in ("temperature", "repetition_penalty") and value <= 0:
        return "must be > 0"
    return None


# extra_options keys the pass sets itself.
_PASS_OWNED = {
    "config_only": "set metadata_only: true instead",
}
# Every option onnxruntime-genai 0.15.2's builder reads (its --extra_options help in builder.py), and the
# int4_-prefixed names it still takes as aliases. The builder ignores any other key without a word, so a
# misspelled option would build a different model than the config says: refused at config time.
_BUILDER_OPTIONS = frozenset(
    {
        "accuracy_level",
        "adapter_path",
        "algo_config",
        "block_size",
        "disable_qkv_fusion",
        "enable_cuda_graph",
        "enable_dml_graph",
        "enable_webgpu_graph",
        "exclude_embeds",
        "exclude_lm_head",
        "filename",
        "fuse_qk_norm_gqa",
        "hf_remote",
        "hf_token",
        "include_hidden_states",
        "is_symmetric",
        "kv_cache_quant_type",
        "kv_cache_scale_file",
        "matmul_mixed_precision",
        "matmulnbits_weights_prepacked",
        "moe_quant_type",
        "nodes_to_exclude",
        "num_hidden_layers",
        "op_types_to_quantize",
        "prune_lm_head",
        "qmoe_block_size",
        "qmoe_weights_prepacked",
        "shared_embeddings",
        "use_8bits_moe",
        "use_cuda_bf16",
        "use_qdq",
        "use_webgpu_fp32",
        "int4_accuracy_level",
        "int4_algo_config",
        "int4_block_size",
        "int4_is_symmetric",
        "int4_nodes_to_exclude",
        "int4_op_types_to_quantize",
    }
    | set(_PASS_OWNED)
)
# hf_token's values that are not a token: on/off for the environment's token.
_TOKEN_SWITCHES = {"true", "false", "1", "0"}
# The tokenizer files the builder copies beside the model (onnxruntime-genai reads them).
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")
# The config keys handled by the pass itself; every other set key is a builder option.
_PASS_KEYS = {"precision", "metadata_only", "search", "extra_options"}


#: The operators onnxruntime's block quantizer (which the builder calls) turns into MatMulNBits /
#: GatherBlockQuantized; another name quantizes nothing, without a word from the builder. An olive-recipes
#: config names a dummy op type on purpose (an int4 build that quantizes nothing), so the run warns.
_QUANTIZABLE_OPS = ("MatMul", "Gather")


def _check_names(key: str, items: Any, separator: str) -> None:
    """A builder option's list of op types or node names (joined with ``separator`` for the builder)."""
    if not items or not all(isinstance(item, str) and item and separator not in item for item in items):
        raise ValueError(f"{key}: a non-empty list of names without '{separator}', got {items!r}")


def _unquantizable_ops(cfg: ModelBuilderConfig) -> tuple[str, list[str]] | None:
    """(key, names): the op types the config asks the builder to quantize that it cannot, or None."""
    given = {"int4_op_types_to_quantize": cfg.int4_op_types_to_quantize, **(cfg.extra_options or {})}
    for key, value in given.items():
        if key.removeprefix("int4_") != "op_types_to_quantize" or value is None:
            continue
        items = value.split("/") if isinstance(value, str) else list(value)
        unknown = [item for item in items if item not in _QUANTIZABLE_OPS]
        if unknown:
            return key, unknown
    return None


class ModelBuilderConfig(PassConfig):
    """Olive's ``ModelBuilder`` parameters (an unset option is not passed, so the builder's default holds)."""

    precision: Literal["fp32", "fp16", "bf16", "int8", "int4"] = "fp32"
    metadata_only: bool = False
    search: dict[str, Any] | None = None
    int4_accuracy_level: Literal[1, 2, 3, 4] | None = None
    int4_block_size: Literal[16, 32, 64, 128, 256] | None = None
    int4_is_symmetric: bool | None = None
    int4_op_types_to_quantize: list[str] | None = None
    int4_nodes_to_exclude: list[str] | None = None
    int4_algo_config: str | None = None
    use_qdq: bool | None = None
    use_8bits_moe: bool | None = None
    use_webgpu_fp32: bool | None = None
    use_cuda_bf16: bool | None = None
    include_hidden_states: bool | None = None
    exclude_embeds: bool | None = None
    exclude_lm_head: bool | None = None
    enable_cuda_graph: bool | None = None
    extra_options: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _filename_builds(self) -> ModelBuilderConfig:
        if self.metadata_only and "filename" in (self.extra_options or {}):
            raise ValueError(
                "extra_options.filename with metadata_only: the genai config names the input's graph file"
            )
        return self

    @field_validator("int4_op_types_to_quantize", "int4_nodes_to_exclude")
    @classmethod
    def _name_lists(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if value is not None:
            key = str(info.field_name)
            _check_names(key, value, _LIST_SEPARATORS[key.removeprefix("int4_")])
        return value

    @field_validator("search")
    @classmethod
    def _search_keys(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        unknown = sorted(set(value or {}) - SEARCH_KEYS)
        if unknown:
            raise ValueError(
                f"unknown generator search option(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(sorted(SEARCH_KEYS))}"
            )
        for key, option in (value or {}).items():
            problem = _search_value_problem(key, option)
            if problem:  # onnxruntime-genai reads the file only when it generates, after the whole build
                raise ValueError(f"search.{key}: {problem}, got {option!r}")
        given = value or {}
        if given.get("num_beams", 1) > 1 and given.get("num_return_sequences", 1) > given["num_beams"]:
            raise ValueError("search.num_return_sequences must be <= num_beams in beam search")
        if given.get("min_length", 0) > given.get("max_length", given.get("min_length", 0)):
            raise ValueError("search.min_length must be <= max_length")
        return value

    @field_validator("extra_options")
    @classmethod
    def _extra_values(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        for key, option in (value or {}).items():
            if key not in _BUILDER_OPTIONS:
                match = difflib.get_close_matches(key, sorted(_BUILDER_OPTIONS), n=1)
                hint = f"did you mean '{match[0]}'? " if match else ""
                raise ValueError(
                    f"extra_options.{key}: not an option of onnxruntime-genai 0.15.2's model builder, "
                    f"which would ignore it; {hint}known: {', '.join(sorted(_BUILDER_OPTIONS))}"
                )
            if key in _PASS_OWNED:
                raise ValueError(f"extra_options.{key}: {_PASS_OWNED[key]}")
            if key == "hf_token" and str(option).lower() not in _TOKEN_SWITCHES:
                # The value is not echoed: it is a secret, and the config is kept in the run's records.
                raise ValueError(
                    "extra_options.hf_token: only true or false here (a token written in the config would "
                    "be kept in Olivine's records); set HF_TOKEN in the environment instead"
                )
            if key == "filename":
                # Olive's recipes name the graph (text.onnx for a vision-language model's text part).
                name = str(option)
                if not name.endswith(".onnx") or name != Path(name).name or name.startswith("."):
                    raise ValueError(
                        "extra_options.filename: a file name ending in .onnx, without folders, "
                        f"got {option!r}"
                    )
            listed = _LIST_SEPARATORS.get(key.removeprefix("int4_"))
            if listed and isinstance(option, list | tuple | str):
                # Olive joins a list for these (op types with '/', node names with ','), as do we.
                items = option.split(listed) if isinstance(option, str) else option
                _check_names(f"extra_options.{key}", items, listed)
                continue
            if not isinstance(option, str | int | float | bool):
                # The builder's --extra_options are key=value strings; a list or mapping failed deep in it.
                lists = " (a list only for op_types_to_quantize, nodes_to_exclude)" if listed is None else ""
                raise ValueError(
                    f"extra_options.{key}: a builder option takes one string, number or boolean{lists}, "
                    f"got {option!r}"
                )
        return value


class ModelBuilder(Pass):
    """Build an ONNX causal LM and its genai config with onnxruntime-genai's model builder."""

    name: ClassVar[str] = "ModelBuilder"
    version: ClassVar[str] = "2"
    config_class: ClassVar[type[PassConfig]] = ModelBuilderConfig
    accepts: ClassVar[tuple[ModelKind, ...]] = ("hf", "onnx")
    libraries: ClassVar[tuple[str, ...]] = (
        "onnxruntime-genai",
        "onnx",
        "onnxruntime",
        "transformers",
        "torch",
    )
    # Olive's search_defaults: Categorical([32, 64, 128]), Boolean(), and the four algorithm names.
    search_values: ClassVar[dict[str, tuple[Any, ...]]] = {
        "int4_block_size": (32, 64, 128),
        "int4_is_symmetric": (True, False),
        "int4_algo_config": ("default", "rtn", "k_quant_mixed", "k_quant_last"),
    }

    @classmethod
    def invalid_reason(cls, config: Any, accelerator: Accelerator) -> str | None:
        cfg: ModelBuilderConfig = config
        provider = _provider(accelerator)
        if cfg.precision == "fp16" and provider == "cpu":
            return "precision fp16 is not supported on the CPU execution provider (use fp32, int8 or int4)"
        if cfg.precision == "bf16" and provider != "cuda":
            return "precision bf16 needs the CUDA execution provider"
        if provider == "cpu":
            for key, why in _GPU_ONLY.items():
                if getattr(cfg, key):
                    return f"{key}: {why}, not to a CPU target"
        return None

    @classmethod
    def input_problem(cls, config: Any, proto: Any) -> tuple[str, str] | None:
        """An ONNX input can only get a genai config (``metadata_only``), not be built."""
        if not config.metadata_only:
            return (
                "metadata_only",
                (
                    "model building needs an HfModel (a local model folder) as input, not an ONNX model; "
                    "metadata_only: true adds a genai config to an ONNX model"
                ),
            )
        return None

    def run(self, model: ModelHandle, config: Any, output_dir: Path, ctx: PassContext) -> ModelHandle:
        cfg: ModelBuilderConfig = config
        reason = self.invalid_reason(cfg, ctx.accelerator)
        if reason is not None:
            raise PassRunError(self.name, reason)
        input_dir = _input_folder(model, cfg)
        if not cfg.metadata_only:
            problem = architecture_problem(input_dir, cfg.precision)
            if problem is not None:
                raise PassRunError(self.name, problem)
        unquantizable = _unquantizable_ops(cfg)
        if unquantizable is not None and cfg.precision in ("int4", "int8"):
            ctx.logger.warning(
                "%s: %s are not operators the builder quantizes (%s): none of them is quantized",
                unquantizable[0],
                unquantizable[1],
                ", ".join(_QUANTIZABLE_OPS),
            )
        options = _builder_options(cfg, model)
        output_dir.mkdir(parents=True, exist_ok=True)
        _build(input_dir, output_dir, cfg.precision, _provider(ctx.accelerator), options, ctx)
        _merge_search_options(output_dir / GENAI_CONFIG, cfg.search)
        # The output folder is self-contained: with metadata_only the input model's files join the new
        # genai config; otherwise the HF config goes beside the model (as in Olive), for a later
        # metadata_only run to read.
        sources = (
            model.files()
            if cfg.metadata_only
            else [input_dir / "config.json", input_dir / "generation_config.json"]
        )
        for source in sources:
            target = output_dir / source.relative_to(input_dir)
            if source.is_file() and not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                _link_or_copy(source, target)
        onnx_name = _onnx_file(output_dir, str(options["filename"]))
        attributes = {k: v for k, v in model.attributes.items() if k != "additional_files"}
        if model.kind == "hf":  # where later data configs find the tokenizer, as after OnnxConversion
            attributes.setdefault("hf_model_path", model.model_path)
        handle_config: dict[str, Any] = {"model_path": str(output_dir), "onnx_file_name": onnx_name}
        if model.kind == "onnx" and model.config.get("inference_settings"):
            handle_config["inference_settings"] = model.config["inference_settings"]
        if attributes:
            handle_config["model_attributes"] = attributes
        return ModelHandle(kind="onnx", config=handle_config)

    def check_output(self, output: ModelHandle) -> None:
        """The genai config names a graph that exists, and onnxruntime-genai loads the model folder (graph,
        external data, genai config) and its tokenizer."""
        folder = Path(str(output.model_path))
        folder = folder if folder.is_dir() else folder.parent
        check_genai_folder(folder)


def _provider(accelerator: Accelerator) -> str:
    first = accelerator.execution_providers[0] if accelerator.execution_providers else "CPUExecutionProvider"
    return _EP_NAMES.get(first, "cpu")


def _input_folder(model: ModelHandle, cfg: ModelBuilderConfig) -> Path:
    if cfg.metadata_only and model.kind != "onnx":
        raise PassRunError("ModelBuilder", "metadata_only: true needs an ONNXModel as input")
    if not cfg.metadata_only and model.kind != "hf":
        raise PassRunError("ModelBuilder", "model building needs an HfModel (a local model folder) as input")
    path = Path(str(model.model_path))
    folder = path if path.is_dir() else path.parent
    if not (folder / "config.json").is_file():
        raise PassRunError(
            "ModelBuilder",
            f"{folder} has no config.json: the builder reads the Hugging Face config from there",
        )
    if not cfg.metadata_only and not any(
        (folder / name).is_file() for name in ("tokenizer.json", "tokenizer.model")
    ):
        # The builder loads the tokenizer after the whole build (and crashed on None); the generator needs it.
        raise PassRunError(
            "ModelBuilder",
            f"{folder} has no tokenizer (tokenizer.json or tokenizer.model): the builder copies it beside "
            "the model for onnxruntime-genai's generator",
        )
    return folder


def _link_or_copy(source: Path, target: Path) -> None:
    """Hard-link a graph or config file; copy anything else (onnx >= 1.18 and onnxruntime refuse external
    data with more than one link, so linking weights would break the input model and this output)."""
    try:
        if source.suffix.lower() not in (".onnx", ".json"):
            raise OSError("weights are copied")
        os.link(source, target)
    except OSError:  # another file system, links not allowed, or not a file to link
        shutil.copy2(source, target)


def _builder_options(cfg: ModelBuilderConfig, model: ModelHandle) -> dict[str, Any]:
    """The builder's extra options, as strings like its ``--extra_options key=value`` (what Olive passes)."""
    options: dict[str, Any] = {"filename": ONNX_FILE_NAME}
    if cfg.metadata_only:
        options["filename"] = model.onnx_path.name
        options["config_only"] = True
    if model.kind == "hf" and model.config.get("adapter_path"):
        options["adapter_path"] = str(model.config["adapter_path"])  # Olive: the HfModel's adapters
    options.update({k: v for k, v in cfg.model_dump().items() if v is not None and k not in _PASS_KEYS})
    options.update(cfg.extra_options or {})
    for key, value in list(options.items()):
        if isinstance(value, bool):
            options[key] = str(value).lower()
        elif isinstance(value, int | float):  # e.g. include_hidden_states: 1 (the builder parses strings)
            options[key] = str(value)
        elif isinstance(value, list | tuple):
            separator = _LIST_SEPARATORS.get(key.removeprefix("int4_"))
            if separator:
                options[key] = separator.join(map(str, value))
    return options


def _build(
    input_dir: Path,
    output_dir: Path,
    precision: str,
    provider: str,
    options: dict[str, Any],
    ctx: PassContext,
) -> None:
    """Run the builder with its console output captured (it prints per tensor); the tail goes into errors."""
    from onnxruntime_genai.models import builder

    console = io.StringIO()
    # onnxruntime's int4/int8 quantizer logs every node at INFO through its own handler.
    quantizer_log = logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer")
    level = quantizer_log.level
    quantizer_log.setLevel(logging.WARNING)
    # The builder keeps downloads and intermediate files in its cache_dir: a private temporary folder, so
    # nothing lands in the user's Hugging Face cache and concurrent runs never share it.
    with tempfile.TemporaryDirectory(prefix="olivine-genai-") as cache_dir:
        try:
            with contextlib.redirect_stdout(console), contextlib.redirect_stderr(console):
                builder.check_extra_options(
                    str(input_dir), str(input_dir), str(output_dir), precision, provider, cache_dir, options
                )
                builder.create_model(
                    model_name=str(input_dir),
                    input_path=str(input_dir),
                    output_dir=str(output_dir),
                    precision=precision,
                    execution_provider=provider,
                    cache_dir=cache_dir,
                    **options,
                )
        except Exception as exc:  # the builder raises ValueError, NotImplementedError, KeyError, ...
            tail = console.getvalue().strip().splitlines()[-3:]
            detail = f" (builder output: {' | '.join(tail)})" if tail else ""
            raise PassRunError(
                "ModelBuilder",
                f"the model builder failed on {input_dir}: {type(exc).__name__}: {exc}{detail}",
            ) from exc
        finally:
            quantizer_log.setLevel(level)
    ctx.logger.debug("model builder output:\n%s", console.getvalue())


def _merge_search_options(genai_config: Path, search: dict[str, Any] | None) -> None:
    if not genai_config.is_file():
        raise PassRunError(
            "ModelBuilder", f"the model builder wrote no {GENAI_CONFIG} in {genai_config.parent}"
        )
    if not search:
        return
    data = json.loads(genai_config.read_text())
    data["search"] = {**(data.get("search") or {}), **search}
    genai_config.write_text(json.dumps(data, indent=4))


def _onnx_file(output_dir: Path, expected: str) -> str:
    if (output_dir / expected).is_file():
        return expected
    found = sorted(p.name for p in output_dir.glob("*.onnx"))
    if len(found) == 1:
        return found[0]
    raise PassRunError(
        "ModelBuilder",
        f"the model builder wrote {len(found)} ONNX files ({', '.join(found) or 'none'}); multi-component "
        "models (encoder/decoder, vision) need a composite model handle, which Olivine does not have yet",
    )


def check_genai_folder(folder: Path) -> None:
    """Raise :class:`PassRunError` unless ``folder`` is a model onnxruntime-genai can load."""
    config_file = folder / GENAI_CONFIG
    try:
        data = json.loads(config_file.read_text())
        graph = str(data["model"]["decoder"]["filename"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PassRunError("ModelBuilder", f"{config_file} is missing or malformed: {exc}") from exc
    if not (folder / graph).is_file():
        raise PassRunError(
            "ModelBuilder", f"{config_file} names the graph '{graph}', which is not in {folder}"
        )
    import onnxruntime_genai as og

    try:
        model = og.Model(str(folder))
    except Exception as exc:  # onnxruntime-genai raises RuntimeError / OrtException
        raise PassRunError("ModelBuilder", f"onnxruntime-genai could not load {folder}: {exc}") from exc
    if any((folder / name).is_file() for name in _TOKENIZER_FILES):
        try:  # the tokenizer is read only when a generator asks for it: load it now
            og.Tokenizer(model)
        except Exception as exc:  # onnxruntime-genai raises RuntimeError
            raise PassRunError(
                "ModelBuilder", f"onnxruntime-genai could not load the tokenizer in {folder}: {exc}"
            ) from exc
