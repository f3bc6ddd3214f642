"""``OnnxConversion``: export a PyTorch / Hugging Face model to ONNX with ``torch.onnx.export`` on the CPU.

Olive's parameter names and defaults (olive/passes/onnx/conversion.py, olive-ai 0.13). The TorchScript
exporter is the default, as in Olive: on transformers 4.x BERT-like models its graph is the one
onnxruntime's transformer optimizer fuses (see FIELD-NOTES).
"""

from __future__ import annotations

import inspect
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import field_validator

from olivine.config.base import LocalPath
from olivine.errors import PassRunError
from olivine.model.handle import ModelHandle, ModelKind
from olivine.passes.base import PassConfig, PassContext
from olivine.passes.kv_export import WITH_PAST_TASKS
from olivine.passes.onnx_io import (
    ONNX_FILE_NAME,
    ExternalDataConfig,
    OnnxPass,
    onnx_output_handle,
    publish_onnx_file,
)

if TYPE_CHECKING:
    import torch


#: torch's other names of its floating dtypes (``torch.half is torch.float16``...).
_TORCH_DTYPE_ALIASES = {"half": "float16", "float": "float32", "double": "float64"}
_TORCH_DTYPES = ("float32", "fp32", "float16", "fp16")
#: Floating dtypes torch has that an export for onnxruntime's CPU provider cannot use.
_CPU_UNUSABLE = {
    "bfloat16": "onnxruntime's CPU provider has no bfloat16 kernels for most operators (Add, MatMul...), "
    "so the exported model would not load",
    "bf16": "onnxruntime's CPU provider has no bfloat16 kernels for most operators (Add, MatMul...), "
    "so the exported model would not load",
    "float64": "the exporter's attention and mask code paths do not take float64",
}


class OnnxConversionConfig(ExternalDataConfig):
    """Olive's ``OnnxConversion`` parameters. GPU options are rejected."""

    target_opset: int = 20
    use_dynamo_exporter: bool = False
    past_key_value_name: str = "past_key_values"
    device: Literal["cpu"] | None = None
    #: Olive resolves any torch dtype name (``torch.float16``, ``half``, ``float``...); float32 and float16
    #: are taken here under any of their torch names (bfloat16 / float64 refused with the reason).
    torch_dtype: Literal["float32", "fp32", "float16", "fp16"] | None = None
    #: Olive uses it for distributed models only; accepted and unused.
    parallel_jobs: int | None = None
    #: An HfModel's adapter (adapter_path) is merged into the weights when the model loads, whatever this
    #: says: the same outputs as Olive's unmerged export, without its separate LoRA operators.
    merge_adapter_weights: bool = False
    #: For an HfModel, write its config.json, generation_config.json and tokenizer files beside model.onnx
    #: (Olive's ``HfMixin.save_metadata``), what a token-generation runtime loads with the graph. Olive
    #: ignores it for a PyTorchModel, and so does Olivine.
    save_metadata_for_token_generation: bool = False
    optimize: bool = True
    dynamic: bool = True
    #: Olive accepts them on every pass; conversion does not use them.
    user_script: LocalPath | None = None
    script_dir: LocalPath | None = None

    @field_validator("device", mode="before")
    @classmethod
    def _cpu_only(cls, value: Any) -> Any:
        if isinstance(value, str) and value.lower() != "cpu":
            raise ValueError(
                f"device {value!r}: Olivine exports on the CPU (for a CPU target: the exported model is the "
                "same), so only 'cpu' or leaving it unset"
            )
        return value.lower() if isinstance(value, str) else value

    @field_validator("torch_dtype", mode="before")
    @classmethod
    def _torch_name(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        name = value.strip().removeprefix("torch.")
        name = _TORCH_DTYPE_ALIASES.get(name, name)
        if name in _CPU_UNUSABLE:
            raise ValueError(f"torch_dtype {value!r}: {_CPU_UNUSABLE[name]}; use float32 or float16")
        if name not in _TORCH_DTYPES:
            raise ValueError(
                f"torch_dtype {value!r}: float32 or float16, under any of torch's names (torch.float16, "
                "half, float, fp16...)"
            )
        return name

    @field_validator("target_opset")
    @classmethod
    def _opset_range(cls, value: int) -> int:
        if not 7 <= value <= 25:
            raise ValueError(f"target_opset must be between 7 and 25, got {value}")
        return value


class OnnxConversion(OnnxPass):
    """Convert a ``PyTorchModel`` or ``HfModel`` to ``model.onnx`` in the output folder."""

    name: ClassVar[str] = "OnnxConversion"
    # 2: a tokenizer-less causal LM without token_type_ids; 3: EOS-ended ids; 4: inputs in forward order,
    # the KV cache's total length named as in Olive; 5: output dimensions named from the task template
    version: ClassVar[str] = "5"
    config_class: ClassVar[type[PassConfig]] = OnnxConversionConfig
    accepts: ClassVar[tuple[ModelKind, ...]] = ("pytorch", "hf")
    #: It loads an HfModel through transformers, so the model's task must be one Olivine can load.
    loads_torch_module: ClassVar[bool] = True
    # Olive's OnnxConversion declares no search_defaults: nothing to search unless a config lists choices.
    search_values: ClassVar[Mapping[str, tuple[Any, ...]]] = {}
    libraries: ClassVar[tuple[str, ...]] = ("torch", "transformers", "onnx", "onnxscript")

    def run(self, model: ModelHandle, config: Any, output_dir: Path, ctx: PassContext) -> ModelHandle:
        """Export ``model``; the output handle carries the io_config and (for HF) the model's config."""

        from olivine.model.loaders import get_dummy_inputs, get_io_config, load_torch_module

        cfg: OnnxConversionConfig = config
        module = load_torch_module(model)
        if model.kind == "hf" and str(model.config.get("task")) in WITH_PAST_TASKS:
            return self._run_with_past(model, module, cfg, output_dir, ctx)
        io_config = get_io_config(model, module)
        dummy = get_dummy_inputs(model, module, io_config)
        input_names = list(io_config["input_names"])
        missing = [n for n in input_names if n not in dummy]
        if missing:
            raise PassRunError(self.name, f"the dummy inputs lack {missing}")
        args = tuple(dummy[n] for n in input_names)
        module, args = _cast(module, args, cfg.torch_dtype)
        dynamic_axes = io_config.get("dynamic_axes") if cfg.dynamic else None
        exporter = "dynamo" if cfg.use_dynamo_exporter else "TorchScript"
        ctx.logger.info("exporting with the %s exporter, opset %d", exporter, cfg.target_opset)
        output_names = io_config.get("output_names")
        with (
            tempfile.TemporaryDirectory(prefix="olivine-export-") as tmp,
            _exportable(module, input_names, output_names) as exportable,
        ):
            tmp_path = Path(tmp) / ONNX_FILE_NAME
            try:
                _export(exportable, args, tmp_path, input_names, output_names, dynamic_axes, cfg)
            except Exception as exc:  # torch.onnx raises many unrelated types
                if not _dynamo_retry(model, cfg):
                    raise PassRunError(self.name, f"torch.onnx.export ({exporter}) failed: {exc}") from exc
                # torch 2.13's TorchScript exporter fails on transformers' causal-LM masks
                # ("unordered_map::at"); the dynamo exporter (what Olivine's KV-cache export uses) does not.
                ctx.logger.warning(
                    "the TorchScript exporter failed on this %s model (%s); exporting with the dynamo "
                    "exporter instead (opset >= 18)",
                    model.config.get("task"),
                    str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                )
                retry = cfg.model_copy(
                    update={"use_dynamo_exporter": True, "target_opset": max(cfg.target_opset, 18)}
                )
                try:
                    _export(exportable, args, tmp_path, input_names, output_names, dynamic_axes, retry)
                except Exception as again:
                    raise PassRunError(
                        self.name, f"torch.onnx.export failed with TorchScript ({exc}) and dynamo ({again})"
                    ) from again
            proto = publish_onnx_file(tmp_path, output_dir / ONNX_FILE_NAME, cfg)
        io_config = {**io_config, "output_names": [o.name for o in proto.graph.output]}
        io_config.pop("dynamic_shapes", None)
        attributes = {**_hf_attributes(model, module), **model.attributes, "io_config": io_config}
        return self._finish(model, cfg, output_dir, attributes, ctx)

    def _finish(
        self,
        model: ModelHandle,
        cfg: OnnxConversionConfig,
        output_dir: Path,
        attributes: dict[str, Any],
        ctx: PassContext,
    ) -> ModelHandle:
        if cfg.save_metadata_for_token_generation and model.kind == "hf":
            try:
                names = save_token_generation_metadata(model, output_dir)
            except Exception as exc:  # transformers raises OSError, ValueError, ... on a broken folder
                raise PassRunError(self.name, f"save_metadata_for_token_generation failed: {exc}") from exc
            # Olive lists them in model_attributes.additional_files (absolute paths it copies to the output);
            # here they sit in the model's folder, which travels with the model, and the output folder gets
            # the HF input's files anyway (engine/output.py).
            ctx.logger.info("token-generation metadata beside the model: %s", ", ".join(names))
        return onnx_output_handle(model, output_dir, ONNX_FILE_NAME, attributes)

    def _run_with_past(
        self, model: ModelHandle, module: Any, cfg: OnnxConversionConfig, output_dir: Path, ctx: PassContext
    ) -> ModelHandle:
        """A causal LM with its KV cache (Olive's text-generation-with-past): see ``kv_export``."""
        from olivine.passes import kv_export

        module, _ = _cast(module, (), cfg.torch_dtype)
        io_config = kv_export.io_config(module)
        opset = max(cfg.target_opset, 18)
        ctx.logger.info("exporting with the KV cache: dynamo exporter, opset %d", opset)
        with tempfile.TemporaryDirectory(prefix="olivine-export-") as tmp:
            tmp_path = Path(tmp) / ONNX_FILE_NAME
            try:
                kv_export.export_with_past(module, io_config, tmp_path, opset=opset, optimize=cfg.optimize)
            except Exception as exc:  # torch.onnx raises many unrelated types
                raise PassRunError(self.name, f"KV-cache export (dynamo) failed: {exc}") from exc
            publish_onnx_file(tmp_path, output_dir / ONNX_FILE_NAME, cfg)
        attributes = {**_hf_attributes(model, module), **model.attributes, "io_config": io_config}
        return self._finish(model, cfg, output_dir, attributes, ctx)


#: Tasks whose model the TorchScript exporter may fail on (causal-LM masks), retried with dynamo.
_CAUSAL_LM_TASKS = ("text-generation", "causal-lm")


def _dynamo_retry(model: ModelHandle, cfg: OnnxConversionConfig) -> bool:
    """Whether a failed TorchScript export of ``model`` is retried with the dynamo exporter."""
    return model.kind == "hf" and not cfg.use_dynamo_exporter and model.config.get("task") in _CAUSAL_LM_TASKS


def _cast(
    module: torch.nn.Module, args: tuple[Any, ...], dtype_name: str | None
) -> tuple[Any, tuple[Any, ...]]:
    import torch

    if dtype_name is None:
        return module, args
    aliases = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
    dtype = getattr(torch, aliases.get(dtype_name, dtype_name))
    cast_args = tuple(a.to(dtype) if a.is_floating_point() else a for a in args)
    return module.to(dtype), cast_args


@contextmanager
def _exportable(
    module: torch.nn.Module, input_names: list[str], output_names: list[str] | None
) -> Iterator[Any]:
    """``module`` seen by the exporter as positional tensors in, a tuple of tensors out.

    transformers models take keyword arguments (BERT's positional order is not the tokenizer's) and return
    ``ModelOutput`` objects. The forward is swapped on the instance rather than wrapped in a parent module,
    so node names keep the model's own scopes (``/embeddings/...``), as in Olive's export.
    """
    import torch

    from olivine.model.loaders import call_module

    if isinstance(module, torch.jit.ScriptModule):
        # A scripted module's forward cannot be replaced, and torch 2.13's tracer refuses a scripted module
        # called from a wrapper; the TorchScript exporter takes it as is (positional inputs).
        yield module
        return
    inner = module.forward

    def forward(*args: torch.Tensor) -> Any:
        out = call_module(inner, input_names, dict(zip(input_names, args, strict=True)))
        if hasattr(out, "to_tuple") or isinstance(out, dict):
            values = dict(out.items())
            if output_names and all(n in values for n in output_names):
                return tuple(values[n] for n in output_names)
            return tuple(v for v in values.values() if isinstance(v, torch.Tensor))
        return out

    # The dynamo exporter maps dynamic axes to inputs through forward's signature: give it the input names
    # (when they are Python names: Olive's KV-cache inputs are past_key_values.<i>.key).
    if all(n.isidentifier() for n in input_names):
        forward.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in input_names]
        )
    module.forward = forward
    try:
        yield module
    finally:
        del module.forward


def _export(
    module: Any,
    args: tuple[Any, ...],
    path: Path,
    input_names: list[str],
    output_names: list[str] | None,
    dynamic_axes: dict[str, Any] | None,
    cfg: OnnxConversionConfig,
) -> None:
    import torch

    with torch.no_grad(), warnings.catch_warnings():
        if not cfg.use_dynamo_exporter:
            # The TorchScript exporter is chosen on purpose (it is what the transformer optimizer fuses);
            # torch announces its deprecation on every call.
            warnings.filterwarnings(
                "ignore", message="You are using the legacy TorchScript", category=DeprecationWarning
            )
            # TracerWarnings flag values frozen into the trace (transformers' mask constants on every BERT);
            # the dynamic axes keep the shapes general, and an export is checked against torch by its tests.
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            # A scripted module has no Python signature; torch then takes the inputs positionally, as given.
            warnings.filterwarnings("ignore", message="no signature found for", category=UserWarning)
            torch.onnx.export(
                module,
                args,
                str(path),
                dynamo=False,
                export_params=True,
                opset_version=cfg.target_opset,
                input_names=input_names,
                output_names=output_names,
                dynamic_axes=dynamic_axes,
            )
            return
        # torch's own deprecation notices raised from inside the dynamo exporter; nothing the user can act on.
        warnings.filterwarnings(
            "ignore", message=r"`isinstance\(treespec, LeafSpec\)`", category=FutureWarning
        )
        warnings.filterwarnings(
            "ignore", message=r"# The axis name: .* will not be used", category=UserWarning
        )
        # Olive's io_config speaks dynamic_axes; torch converts them itself and export succeeds on BERT-like
        # models, so its advice to write dynamic_shapes instead is noise here.
        warnings.filterwarnings(
            "ignore", message=r"# 'dynamic_axes' is not recommended", category=UserWarning
        )
        program = torch.onnx.export(
            module,
            args,
            dynamo=True,
            verbose=False,
            opset_version=cfg.target_opset,
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            optimize=cfg.optimize,
        )
        if program is None:
            raise RuntimeError("the dynamo exporter returned no program")
        program.save(str(path))


def _hf_attributes(model: ModelHandle, module: torch.nn.Module) -> dict[str, Any]:
    """For an HF model: its config (Olive's model_attributes) and the folder with its files and tokenizer."""
    if model.kind != "hf":
        return {}
    hf_config = getattr(module, "config", None)
    attributes: dict[str, Any] = dict(hf_config.to_dict()) if hf_config is not None else {}
    attributes["hf_model_path"] = model.model_path
    if model.config.get("task"):
        attributes["hf_task"] = model.config["task"]
    return attributes


def save_token_generation_metadata(model: ModelHandle, output_dir: Path) -> list[str]:
    """Write an HF model's ``config.json``, ``generation_config.json`` (when it has one) and tokenizer files
    into ``output_dir``; return the names written. Olive's ``HfMixin.save_metadata`` (olive-ai 0.13): files
    already there are kept, a tokenizer without a pad token gets the EOS token as pad token, and the Python
    files of a custom (``auto_map``) model come along so ``trust_remote_code`` loads still work."""
    import shutil

    import transformers

    source = Path(str(model.model_path))
    load_kwargs = model.config.get("load_kwargs") or {}
    trust = bool(load_kwargs.get("trust_remote_code"))
    output_dir.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    if not (output_dir / "config.json").is_file():
        hf_config = transformers.AutoConfig.from_pretrained(
            source, trust_remote_code=trust, local_files_only=True
        )
        for module_file in _auto_map_files(hf_config, source):
            shutil.copyfile(module_file, output_dir / module_file.name)
            written.append(module_file.name)
        hf_config.save_pretrained(output_dir)
    written.append("config.json")
    if not (output_dir / "generation_config.json").is_file():
        try:
            generation = transformers.GenerationConfig.from_pretrained(source, local_files_only=True)
        except OSError:  # not a generative model: Olive writes none either
            generation = None
        if generation is not None:
            generation.save_pretrained(output_dir)
            written.append("generation_config.json")
    if not (output_dir / "tokenizer_config.json").is_file():
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            source, trust_remote_code=trust, local_files_only=True
        )
        if getattr(tokenizer, "pad_token", None) is None:
            tokenizer.pad_token = tokenizer.eos_token
        saved = tokenizer.save_pretrained(output_dir)
        written += [Path(p).name for p in saved if Path(p).is_file()]
    return sorted(set(written))


def _auto_map_files(hf_config: Any, source: Path) -> list[Path]:
    """The local module files a custom model's ``auto_map`` names (``configuration_x.Config`` -> x.py)."""
    auto_map = getattr(hf_config, "auto_map", None) or {}
    refs = [r for v in auto_map.values() for r in (v if isinstance(v, list | tuple) else [v])]
    names = {r.split("--")[-1].split(".")[0] for r in refs if isinstance(r, str)}
    return sorted(source / f"{name}.py" for name in names if (source / f"{name}.py").is_file())
