"""Turn PyTorch and Hugging Face model handles into ``torch.nn.Module`` objects, and describe their I/O.

Follows Olive's ``PyTorchModel`` / ``HfModel`` semantics: a ``model_loader`` named in ``model_script`` is
called with ``model_path``; an ``io_config`` is a dict or the name of a function in ``model_script`` called
with the model handle; ``dummy_inputs_func`` likewise. Hugging Face models are always loaded from local
files (no hub access). torch and transformers are imported inside the functions.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from olivine.config.model import DEFAULT_HF_TASK
from olivine.errors import ModelLoadError
from olivine.hf_import import import_transformers
from olivine.model.handle import ModelHandle
from olivine.model.hf_tasks import ENCODER_TEXT_INPUTS, OUTPUT_AXES, TASKS, InputKind, unsupported_reason

if TYPE_CHECKING:
    import torch

# Two probe shapes (batch, sequence): a dimension that follows them is dynamic. Two probes rather than one,
# so a hidden size that happens to equal the probe length is not mistaken for the sequence axis.
_PROBES = ((2, 16), (3, 17))


def load_torch_module(model: ModelHandle) -> torch.nn.Module:
    """Load a ``PyTorchModel`` or ``HfModel`` handle as a module in eval mode.

    Raises:
        ModelLoadError: the files, the loader function or the task cannot produce a module.
    """
    if model.kind == "pytorch":
        module = _load_pytorch(model)
    elif model.kind == "hf":
        module = _load_hf(model)
    else:
        raise ModelLoadError(f"{model.type_name} is not a PyTorch model")
    import torch

    if not isinstance(module, torch.nn.Module):
        raise ModelLoadError(f"the model loader returned {type(module).__name__}, not a torch.nn.Module")
    return module.eval()


def _load_pytorch(model: ModelHandle) -> Any:
    import torch

    cfg = model.config
    path = model.model_path
    loader = cfg.get("model_loader")
    fmt = cfg.get("model_file_format") or "PyTorch.EntireModel"
    try:
        if loader:
            return user_function(model, str(loader))(path)
        if path is None:
            raise ModelLoadError("PyTorchModel needs 'model_path' or 'model_loader'")
        if fmt == "PyTorch.TorchScript":
            return torch.jit.load(path, map_location="cpu")
        if fmt == "PyTorch.EntireModel":
            # A pickled module can only be loaded with weights_only=False; the file is the user's own model.
            return torch.load(path, map_location="cpu", weights_only=False)
        if fmt == "PyTorch.StateDict":
            raise ModelLoadError(
                "a 'PyTorch.StateDict' model needs a 'model_loader' in 'model_script' that builds the module "
                "and loads the state dict from model_path"
            )
        raise ModelLoadError(f"unsupported model_file_format '{fmt}'")
    except ModelLoadError:
        raise
    except Exception as exc:  # user loaders and torch.load raise anything
        raise ModelLoadError(f"could not load the PyTorch model ({fmt}, {path}): {exc}") from exc


def _load_hf(model: ModelHandle) -> Any:
    transformers = import_transformers()

    path = model.model_path
    if path is None or not Path(path).is_dir():
        raise ModelLoadError(f"HfModel 'model_path' must be a local folder with config.json; got {path}")
    task = str(model.config.get("task") or DEFAULT_HF_TASK)
    reason = unsupported_reason(task, given=bool(model.config.get("task")))
    if reason is not None:
        raise ModelLoadError(reason)
    class_name = TASKS[task].auto_class
    auto_class = getattr(transformers, class_name)
    kwargs = _hf_load_kwargs(model.config.get("load_kwargs") or {})
    try:
        module = auto_class.from_pretrained(path, local_files_only=True, **kwargs)
    except Exception as exc:  # transformers raises OSError, ValueError, KeyError, ...
        raise ModelLoadError(f"transformers could not load {class_name} from {path}: {exc}") from exc
    adapter = model.config.get("adapter_path")
    if adapter:
        module = _merge_adapter(module, str(adapter))
    if class_name == "AutoModelForCausalLM" and getattr(module, "config", None) is not None:
        module.config.use_cache = False  # exported and evaluated without the KV cache
    return module


def _merge_adapter(module: Any, adapter_path: str) -> Any:
    """``module`` with the PEFT adapter at ``adapter_path`` merged into its weights (what the adapted model
    computes, as plain modules a runner or an exporter takes)."""
    from olivine.errors import MissingDependencyError

    try:
        from peft import PeftModel
    except ImportError as exc:
        raise MissingDependencyError(
            "HfModel 'adapter_path' needs peft: pip install 'olivine[genai]' (or pip install peft)"
        ) from exc
    try:
        return PeftModel.from_pretrained(module, adapter_path, is_trainable=False).merge_and_unload()
    except Exception as exc:  # peft raises ValueError / OSError / KeyError for a folder it cannot read
        raise ModelLoadError(f"peft could not apply the adapter {adapter_path}: {exc}") from exc


def _hf_load_kwargs(load_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Olive's ``load_kwargs``: ``extra_args`` are merged in, a ``torch_dtype`` string becomes a dtype."""
    import torch

    kwargs = {k: v for k, v in load_kwargs.items() if k != "extra_args" and v is not None}
    kwargs.update(load_kwargs.get("extra_args") or {})
    dtype = kwargs.get("torch_dtype")
    if isinstance(dtype, str) and dtype != "auto":
        resolved = getattr(torch, dtype, None)
        if not isinstance(resolved, torch.dtype):
            raise ModelLoadError(f"load_kwargs.torch_dtype '{dtype}' is not a torch dtype")
        kwargs["torch_dtype"] = resolved
    return kwargs


def user_function(model: ModelHandle, name: str) -> Callable[..., Any]:
    """The function ``name`` from the handle's ``model_script``.

    Raises:
        ModelLoadError: there is no ``model_script``, it cannot be imported, or it lacks ``name``.
    """
    script = model.config.get("model_script")
    if not script:
        raise ModelLoadError(f"'{name}' names a function, but the model has no 'model_script'")
    module = import_script(Path(str(script)), model.config.get("script_dir"))
    func = getattr(module, name, None)
    if not callable(func):
        raise ModelLoadError(f"{script} defines no function '{name}'")
    return func


def import_script(script: Path, script_dir: str | None = None) -> ModuleType:
    """Import a user script as a module (once per path), with ``script_dir`` and its folder on sys.path."""
    script = script.resolve()
    module_name = f"olivine_user_{script.stem}_{hashlib.sha256(str(script).encode()).hexdigest()[:16]}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    from olivine import olive_standin

    olive_standin.install()
    # Olive puts script_dir on sys.path so a script can import its own helper modules.
    for folder in (script_dir, str(script.parent)):
        if folder and folder not in sys.path:
            sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(module_name, script)
    if spec is None or spec.loader is None:
        raise ModelLoadError(f"cannot import {script}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's top-level code may raise anything
        del sys.modules[module_name]
        raise ModelLoadError(f"importing {script} failed: {exc}") from exc
    return module


def get_io_config(model: ModelHandle, module: torch.nn.Module) -> dict[str, Any]:
    """The model's io_config in Olive's form (``input_names``, ``input_shapes``, ``input_types``,
    ``output_names``, ``dynamic_axes``), with integer axis keys.

    From the handle's ``io_config`` (a dict, or a function name in ``model_script`` called with the handle);
    for a Hugging Face model without one, derived from its tokenizer and a probe forward pass.

    Raises:
        ModelLoadError: no io_config is given for a PyTorch model, or the given one is malformed.
    """
    given = model.config.get("io_config")
    if isinstance(given, str):
        given = user_function(model, given)(model)
    if given is not None:
        if hasattr(given, "model_dump"):
            given = given.model_dump()
        if not isinstance(given, dict) or not given.get("input_names"):
            raise ModelLoadError("io_config must be a mapping with at least 'input_names'")
        io_config = _normalize_io_config(given)
        if model.kind == "pytorch" and io_config.get("kv_cache"):
            return extend_with_kv_cache(io_config, model.config.get("model_attributes"))
        return io_config
    if model.kind == "hf":
        return _hf_io_config(model, module)
    names = _forward_parameters(module)
    if not names:
        raise ModelLoadError("the model has no io_config and its forward() names no inputs; set 'io_config'")
    return {"input_names": names}


def _normalize_io_config(io_config: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in io_config.items() if v is not None}
    axes = out.get("dynamic_axes")
    if axes:
        # JSON turns the axis keys into strings; torch.onnx.export wants ints.
        out["dynamic_axes"] = {name: {int(k): str(v) for k, v in dict(d).items()} for name, d in axes.items()}
    return out


def extend_with_kv_cache(
    io_config: dict[str, Any], model_attributes: dict[str, Any] | None
) -> dict[str, Any]:
    """Olive's ``extend_io_config_with_kv_cache`` for a PyTorchModel: the io_config with one past key and
    value input per layer (``past_key_values.<i>.key`` / ``.value``, shape ``[batch, heads / world_size,
    past_sequence_length, hidden_size / heads]``) and one present output each (``present.<i>.key`` /
    ``.value``), and their dynamic axes. ``past_sequence_length`` defaults to the attention mask's length
    minus the input ids' (``input_shapes``), the batch size to the input ids', as in Olive.

    Raises:
        ModelLoadError: the model's numbers are missing (validation refuses such a config first).
    """
    from olivine.config.model import kv_cache_config

    try:
        kv = kv_cache_config(io_config["kv_cache"], model_attributes)
    except ValueError as exc:
        raise ModelLoadError(f"io_config.{exc}") from None
    names = list(io_config["input_names"])
    shapes = io_config.get("input_shapes")
    lengths = {n: s[1] for n, s in zip(names, shapes or [], strict=False) if len(s) > 1}
    batch_size = kv.batch_size or next(
        (s[0] for n, s in zip(names, shapes or [], strict=False) if n == "input_ids"), 1
    )
    past = kv.past_sequence_length
    if past is None:
        past = lengths.get("attention_mask", 0) - lengths.get("input_ids", 0) if shapes else 0
    heads = kv.num_attention_heads
    shape = [batch_size, heads // kv.world_size, past, kv.hidden_size // heads]
    layers = range(kv.num_hidden_layers)
    past_names = [
        n.replace("<id>", str(i)) for i in layers for n in (kv.ort_past_key_name, kv.ort_past_value_name)
    ]
    present_names = [
        n.replace("<id>", str(i))
        for i in layers
        for n in (kv.ort_present_key_name, kv.ort_present_value_name)
    ]
    seq = str(kv.sequence_length_idx)
    past_axes = kv.past_kv_dynamic_axis or {
        0: "batch_size",
        int(seq): "max_sequence_length" if kv.shared_kv else "past_sequence_length",
    }
    present_axes = kv.present_kv_dynamic_axis or {
        0: "batch_size",
        int(seq): "max_sequence_length" if kv.shared_kv else "past_sequence_length + sequence_length",
    }
    out = dict(io_config)
    out["input_names"] = names + past_names
    if shapes:
        out["input_shapes"] = list(shapes) + [list(shape) for _ in past_names]
        types = io_config.get("input_types") or ["int64"] * len(names)
        out["input_types"] = list(types) + [kv.dtype or "float32"] * len(past_names)
    out["output_names"] = list(io_config.get("output_names") or []) + present_names
    axes = dict(io_config.get("dynamic_axes") or {})
    axes.update({n: {int(k): str(v) for k, v in past_axes.items()} for n in past_names})
    axes.update({n: {int(k): str(v) for k, v in present_axes.items()} for n in present_names})
    out["dynamic_axes"] = axes
    out["kv_cache"] = kv.model_dump()
    return out


#: Olive's default past key/value input names (``KVCacheConfig.ort_past_key_name`` / ``_value_name``).
_PAST_NAME = re.compile(r"^past_key_values\.(\d+)\.(key|value)$")


def merge_past_key_values(feed: dict[str, Any]) -> dict[str, Any]:
    """Olive's ``merge_kv_cache_hook``: the ``past_key_values.<i>.key`` / ``.value`` inputs of ``feed``
    gathered into one ``past_key_values`` list of ``(key, value)`` per layer, the argument a model's
    forward takes. ``feed`` without such inputs is returned as is."""
    pairs: dict[int, dict[str, Any]] = {}
    rest: dict[str, Any] = {}
    for name, value in feed.items():
        match = _PAST_NAME.match(name)
        if match:
            pairs.setdefault(int(match.group(1)), {})[match.group(2)] = value
        else:
            rest[name] = value
    if not pairs or "past_key_values" in rest:
        return feed
    if sorted(pairs) != list(range(len(pairs))) or any(len(p) != 2 for p in pairs.values()):
        raise ModelLoadError(f"past key/value inputs are not one key and one value per layer: {sorted(feed)}")
    rest["past_key_values"] = [(pairs[i]["key"], pairs[i]["value"]) for i in range(len(pairs))]
    return rest


def _forward_parameters(module: torch.nn.Module) -> list[str]:
    try:
        params = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError):  # e.g. TorchScript modules
        return []
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in params if p.kind in kinds]


def _hf_io_config(model: ModelHandle, module: torch.nn.Module) -> dict[str, Any]:
    import torch

    names = hf_input_names(model, module)
    task = str(model.config.get("task") or DEFAULT_HF_TASK)
    outputs: list[dict[str, Any]] = []
    with torch.inference_mode():
        for batch, seq in _PROBES:
            try:
                out = module(**_hf_batch(module, names, batch, seq))
            except Exception as exc:  # the model's own error, e.g. an encoder-decoder without decoder inputs
                raise ModelLoadError(_probe_failure(model, module, names, exc)) from exc
            items = dict(out.items()) if hasattr(out, "items") else {}
            tensors = {k: v for k, v in items.items() if isinstance(v, torch.Tensor)}
            if not tensors:
                raise ModelLoadError("the Hugging Face model returned no named tensors; set 'io_config'")
            outputs.append(tensors)
    dynamic_axes: dict[str, dict[int, str]] = {n: dict(_INPUT_AXES.get(n, _TOKEN_AXES)) for n in names}
    first, second = outputs
    for name, tensor in first.items():
        axes: dict[int, str] = {}
        for dim, size in enumerate(tensor.shape):
            other = second[name].shape[dim]
            if (size, other) == (_PROBES[0][0], _PROBES[1][0]) and dim == 0:
                axes[dim] = "batch_size"
            elif (size, other) == (_PROBES[0][1], _PROBES[1][1]):
                axes[dim] = "sequence_length"
        # The task template's names for the other dimensions (num_labels, vocab_size, hidden_size), as
        # Olive's export writes them (a RenameOutputDims / DynamicToFixedShape may name them).
        for dim, label in OUTPUT_AXES.get(task, {}).get(name, {}).items():
            if dim < tensor.dim() and dim not in axes:
                axes[dim] = label
        dynamic_axes[name] = axes
    return {
        "input_names": names,
        "input_types": ["float32" if n in _FLOAT_INPUTS else "int64" for n in names],
        "output_names": list(first),
        "dynamic_axes": dynamic_axes,
    }


_TOKEN_AXES = {0: "batch_size", 1: "sequence_length"}
_INPUT_AXES: dict[str, dict[int, str]] = {
    "pixel_values": {0: "batch_size"},
    "input_values": {0: "batch_size", 1: "audio_sequence_length"},
    "input_features": {0: "batch_size"},
}
_FLOAT_INPUTS = frozenset(_INPUT_AXES)
#: A model's ``main_input_name`` and the kind of inputs it takes.
_MAIN_INPUT_KINDS: dict[str, InputKind] = {
    "pixel_values": "image",
    "input_values": "audio",
    "input_features": "audio",
}


def hf_input_names(model: ModelHandle, module: torch.nn.Module) -> list[str]:
    """The inputs a Hugging Face model of the handle's task takes (Olive's task templates)."""
    task = str(model.config.get("task") or DEFAULT_HF_TASK)
    kind: InputKind = TASKS[task].inputs if task in TASKS else "text"
    accepted = set(_forward_parameters(module))
    if kind == "text" and "input_ids" not in accepted:
        # A task that does not say the modality (feature-extraction of a ViT, a wav2vec2): the model's own
        # main input does, as in optimum's export configs.
        kind = _MAIN_INPUT_KINDS.get(str(getattr(module, "main_input_name", "")), kind)
    names: list[str] = []
    if kind in ("text", "text+image"):
        names = [n for n in hf_tokenizer_input_names(model) if n in accepted]
        if task in TASKS and "token_type_ids" not in TASKS[task].text_inputs:
            # A causal LM's template has no token_type_ids (Olive's), even where the tokenizer lists them.
            names = [n for n in names if n != "token_type_ids"]
        if "input_ids" not in names:
            raise ModelLoadError("cannot derive the inputs of this Hugging Face model; set 'io_config'")
    if kind in ("image", "text+image"):
        names.append("pixel_values")
    if kind == "audio":
        names.append(_audio_input(module))
    return forward_order(names, _forward_parameters(module))


def forward_order(names: list[str], parameters: list[str]) -> list[str]:
    """``names`` in the order of the model's ``forward`` parameters, as Olive orders an export's inputs
    (``past_key_values.0.key`` goes where ``past_key_values`` is); names it does not take keep their order
    at the end. A positional data config or ``ReorderInputs`` / ``RenameInputDims`` by index then means
    the same input as in Olive's export."""
    ordered: list[str] = []
    for param in parameters:
        ordered += [n for n in names if n not in ordered and (n == param or n.startswith(f"{param}."))]
    return ordered + [n for n in names if n not in ordered]


#: Model types whose audio input is a spectrogram (``input_features``) of a shape this module builds.
_SPECTROGRAM_TYPES = ("whisper", "audio-spectrogram-transformer")


def _audio_input(module: torch.nn.Module) -> str:
    """``input_values`` (raw audio: wav2vec2, HuBERT, WavLM, ...) or ``input_features`` (a spectrogram:
    Whisper, AST), as the model names its main input."""
    main = str(getattr(module, "main_input_name", "input_values"))
    if main == "input_values":
        return main
    model_type = str(getattr(getattr(module, "config", None), "model_type", ""))
    if main == "input_features" and model_type in _SPECTROGRAM_TYPES:
        return main
    raise ModelLoadError(
        f"audio-classification: the '{model_type}' model's input is '{main}'; Olivine builds example audio "
        f"inputs for raw-audio models (input_values) and for {', '.join(_SPECTROGRAM_TYPES)} spectrograms; "
        "give this model an io_config (input_names, input_shapes)"
    )


def hf_tokenizer_input_names(model: ModelHandle) -> list[str]:
    """The tokenizer's ``model_input_names`` for a local HF model folder; without a tokenizer, the task's
    text inputs (an encoder's three, a causal LM's input_ids and attention_mask)."""
    transformers = import_transformers()

    path = model.model_path
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    except Exception:  # no tokenizer files: the task template's inputs
        task = str(model.config.get("task") or DEFAULT_HF_TASK)
        return list(TASKS[task].text_inputs if task in TASKS else ENCODER_TEXT_INPUTS)
    return list(tokenizer.model_input_names)


def _probe_failure(model: ModelHandle, module: torch.nn.Module, names: list[str], exc: Exception) -> str:
    config = getattr(module, "config", None)
    model_type = getattr(config, "model_type", type(module).__name__)
    task = model.config.get("task") or DEFAULT_HF_TASK
    why = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    hint = "give the input model an io_config (input_names, input_shapes) that this model takes"
    if getattr(config, "is_encoder_decoder", False):
        hint = (
            f"'{model_type}' is an encoder-decoder model: Olivine exports one graph from the task's inputs "
            f"({', '.join(names)}) and does not build decoder inputs; use a task whose model runs on those "
            "inputs alone, or " + hint
        )
    return f"the '{model_type}' model for task '{task}' failed on example inputs ({why}); {hint}"


def _hf_batch(module: torch.nn.Module, names: list[str], batch: int, seq: int) -> dict[str, torch.Tensor]:
    import torch

    generator = torch.Generator().manual_seed(0)
    config = getattr(module, "config", None)
    vocab = int(_config_value(config, "vocab_size", 100))
    feed: dict[str, torch.Tensor] = {}
    for name in names:
        if name == "input_ids":
            feed[name] = torch.randint(0, vocab, (batch, seq), generator=generator, dtype=torch.int64)
            eos = getattr(config, "eos_token_id", None)
            if isinstance(eos, int) and 0 <= eos < vocab:  # BART-style classifiers pool at the last EOS
                feed[name][:, -1] = eos
        elif name == "attention_mask":
            feed[name] = torch.ones(batch, seq, dtype=torch.int64)
        elif name == "pixel_values":
            channels = int(_config_value(config, "num_channels", 3))
            height, width = _image_size(config)
            feed[name] = torch.rand(batch, channels, height, width, generator=generator)
        elif name in ("input_values", "input_features"):
            feed[name] = _audio_batch(config, batch, seq, generator)
        else:
            feed[name] = torch.zeros(batch, seq, dtype=torch.int64)
    return feed


def _audio_batch(config: Any, batch: int, seq: int, generator: Any) -> torch.Tensor:
    """Example audio for the model's main input: a spectrogram for Whisper ([batch, mel, frames], the
    encoder's fixed length) and AST ([batch, time, mel], though it calls it input_values), else raw audio
    long enough for a wav2vec2-style convolutional feature encoder."""
    import torch

    model_type = getattr(config, "model_type", "")
    mel = int(_config_value(config, "num_mel_bins", 80))
    if model_type == "whisper":
        frames = 2 * int(_config_value(config, "max_source_positions", 1500))
        return torch.randn(batch, mel, frames, generator=generator)
    if model_type == "audio-spectrogram-transformer":
        return torch.randn(batch, int(_config_value(config, "max_length", 1024)), mel, generator=generator)
    return torch.rand(batch, seq * 100, generator=generator) - 0.5


def _image_size(config: Any) -> tuple[int, int]:
    """Height and width of example images: the model config's ``image_size``; else the size the model's
    own image processor makes (``preprocessor_config.json`` beside the weights: ResNet, RegNet, SegFormer
    configs have no image size, and images prepared by their processor are 224 x 224); else 64, Olive's
    default. The export fixes height and width (only the batch is dynamic, as in Olive)."""
    size = _config_value(config, "image_size", None)
    if size:
        return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[-1]))
    return _processor_image_size(getattr(config, "_name_or_path", None)) or (64, 64)


def _processor_image_size(folder: Any) -> tuple[int, int] | None:
    """The output size of the image processor saved in ``folder`` (its center crop, else its resize)."""
    import json

    if not folder or not isinstance(folder, str):
        return None
    path = Path(folder) / "preprocessor_config.json"
    try:
        data = json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    keys = ("crop_size", "size") if data.get("do_center_crop", True) else ("size",)
    for key in keys:
        value = data.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value, value
        if isinstance(value, dict):
            height, width = value.get("height"), value.get("width")
            if isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0:
                return height, width
            edge = value.get("shortest_edge")
            if isinstance(edge, int) and edge > 0 and "longest_edge" not in value:
                return edge, edge
    return None


def _config_value(config: Any, key: str, default: Any) -> Any:
    """``config.key``, else the vision/text sub-config's (CLIP keeps image_size in ``vision_config``)."""
    for holder in (config, getattr(config, "vision_config", None), getattr(config, "text_config", None)):
        value = getattr(holder, key, None) if holder is not None else None
        if value:
            return value
    return default


def torch_input_names(model: ModelHandle, module: torch.nn.Module) -> list[str]:
    """The names a runner feeds the module: the io_config's input names."""
    return list(get_io_config(model, module)["input_names"])


def get_dummy_inputs(
    model: ModelHandle, module: torch.nn.Module, io_config: dict[str, Any]
) -> dict[str, torch.Tensor]:
    """Inputs for tracing/export, keyed by input name.

    Priority as in Olive: ``dummy_inputs_func`` in ``model_script`` (called with the handle), then the
    io_config's ``input_shapes`` / ``input_types``, then (Hugging Face) a small token batch.

    Raises:
        ModelLoadError: none of the sources gives inputs, or the function returns something unusable.
    """
    import torch

    names = list(io_config["input_names"])
    func_name = model.config.get("dummy_inputs_func")
    if func_name:
        value = user_function(model, str(func_name))(model)
        return _name_inputs(value, names)
    shapes = io_config.get("input_shapes")
    if shapes:
        types = io_config.get("input_types") or ["float32"] * len(shapes)
        if len(shapes) != len(names) or len(types) != len(names):
            raise ModelLoadError("io_config input_names, input_shapes and input_types differ in length")
        generator = torch.Generator().manual_seed(0)
        feed: dict[str, torch.Tensor] = {}
        for name, shape, type_name in zip(names, shapes, types, strict=True):
            dtype = getattr(torch, str(type_name), None)
            if not isinstance(dtype, torch.dtype):
                raise ModelLoadError(f"io_config input type '{type_name}' of '{name}' is not a torch dtype")
            if dtype.is_floating_point:
                feed[name] = torch.rand(*shape, generator=generator).to(dtype)
            else:
                # Ones, as Olive's dummy dataset: a valid token id and a valid mask value.
                feed[name] = torch.ones(*shape, dtype=dtype)
        return feed
    if model.kind == "hf":
        return _hf_batch(module, names, *_PROBES[0])
    raise ModelLoadError("cannot build dummy inputs: set io_config.input_shapes or 'dummy_inputs_func'")


def _name_inputs(value: Any, names: list[str]) -> dict[str, torch.Tensor]:
    import torch

    if isinstance(value, torch.Tensor):
        value = (value,)
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list | tuple) and len(value) == len(names):
        return dict(zip(names, value, strict=True))
    raise ModelLoadError(
        f"dummy_inputs_func must return a tensor, a tuple of {len(names)} tensors, "
        "or a dict keyed by input name"
    )


def call_module(module: Callable[..., Any], input_names: list[str], feed: dict[str, Any]) -> Any:
    """Call ``module`` (a module or a bare ``forward``) with ``feed``: by keyword when forward() takes those
    names, else by position in ``input_names`` order (an io_config may name inputs differently from
    forward's parameters, e.g. ``input`` for ``forward(self, x)``)."""
    try:
        params = inspect.signature(getattr(module, "forward", module)).parameters
    except (TypeError, ValueError):  # TorchScript modules have no Python signature
        params = None
    if params is not None and "past_key_values" in params:
        feed = merge_past_key_values(feed)
    by_name = params is not None and (
        all(n in params for n in feed)
        or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    )
    if by_name:
        return module(**feed)
    return module(*(feed[n] for n in input_names if n in feed))
