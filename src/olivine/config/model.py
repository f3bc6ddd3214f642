"""Input model configs: ``ONNXModel``, ``PyTorchModel``, ``HfModel`` (Olive's names and keys)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from olivine.config.base import LocalPath, LocalPathOrName, StrictModel
from olivine.config.session import SessionOptions
from olivine.config.typed import flatten_typed
from olivine.errors import NotSupportedError


class IOConfig(StrictModel):
    input_names: list[str]
    input_shapes: list[list[int]] | None = None
    input_types: list[str] | None = None
    output_names: list[str] | None = None
    #: Olive records them for its own converters; the export derives the outputs from the model.
    output_shapes: list[list[int | str]] | None = None
    output_types: list[str] | None = None
    dynamic_axes: dict[str, dict[int, str]] | None = None
    dynamic_shapes: Any = None
    #: Olive's KV-cache inputs/outputs for generative models (bool or a KVCacheConfig mapping); an HfModel
    #: with task text-generation-with-past is exported with its cache whatever the mapping says. A
    #: PyTorchModel's io_config is extended with the cache as Olive does (:func:`kv_cache_config`).
    kv_cache: bool | dict[str, Any] | None = None


class KVCacheConfig(StrictModel):
    """Olive's ``KVCacheConfig`` (``olive/model/config/kv_cache_config.py``): the past/present key-value
    inputs and outputs a PyTorchModel's io_config is extended with."""

    num_hidden_layers: int = Field(ge=1)
    num_attention_heads: int = Field(ge=1)
    hidden_size: int = Field(ge=1)
    ort_past_key_name: str = "past_key_values.<id>.key"
    ort_past_value_name: str = "past_key_values.<id>.value"
    ort_present_key_name: str = "present.<id>.key"
    ort_present_value_name: str = "present.<id>.value"
    world_size: int = Field(1, ge=1)
    past_sequence_length: int | None = None
    batch_size: int = 0
    dtype: str | None = "float32"
    shared_kv: bool = False
    sequence_length_idx: int = 2
    past_kv_dynamic_axis: dict[int, str] | None = None
    present_kv_dynamic_axis: dict[int, str] | None = None


#: Olive's aliases (``resolve_alias``) for the model numbers read from model_attributes (the three a KV cache
#: needs; the head count and hidden size also for the transformer optimizer).
OLIVE_ALIASES = {
    "num_hidden_layers": ("num_hidden_layers", "num_layers", "n_layer", "n_layers"),
    "num_attention_heads": ("num_attention_heads", "n_head", "n_heads", "num_heads"),
    "hidden_size": ("hidden_size", "d_model", "n_embd", "dim"),
}


def kv_cache_config(
    kv_cache: bool | dict[str, Any], model_attributes: dict[str, Any] | None
) -> KVCacheConfig:
    """Olive's ``complete_kv_cache_with_model_attributes``: the mapping (or ``true``) completed with the
    model's numbers from ``model_attributes``.

    Raises:
        ValueError: a number is in neither, or the mapping has a key Olive's KVCacheConfig does not.
    """
    given = dict(kv_cache) if isinstance(kv_cache, dict) else {}
    attributes = model_attributes or {}
    for key, aliases in OLIVE_ALIASES.items():
        if not given.get(key):
            given[key] = next((attributes[a] for a in aliases if attributes.get(a)), None)
    if not given.get("world_size"):
        given["world_size"] = attributes.get("world_size") or 1
    missing = [key for key in OLIVE_ALIASES if not given.get(key)]
    if missing:
        raise ValueError(
            f"kv_cache needs {', '.join(missing)} (in kv_cache or model_attributes), as Olive does"
        )
    return KVCacheConfig.model_validate(given)


class InferenceSettings(StrictModel):
    """How onnxruntime runs the model (Olive's keys); session option enums by name or by integer."""

    execution_provider: list[Any] | None = None
    provider_options: list[dict[str, Any]] | None = None
    session_options: SessionOptions | None = None
    # Written by Olive's OrtSessionParamsTuning into its output model config; kept so such a config
    # loads. Olivine runs on the CPU without I/O binding and has no ROCm op tuning.
    io_bind: bool | None = None
    tuning_op_result: Any = None

    @field_validator("execution_provider", mode="before")
    @classmethod
    def _one_provider(cls, value: Any) -> Any:
        """Olive's configs also write one provider as a plain string (``"CPUExecutionProvider"``)."""
        return [value] if isinstance(value, str) else value

    def provider_names(self) -> list[str]:
        """The execution provider names (an entry may be ``[name, options]``, as onnxruntime allows)."""
        names = []
        for entry in self.execution_provider or []:
            name = entry[0] if isinstance(entry, list | tuple) and entry else entry
            names.append(str(name))
        return names


class ONNXModelConfig(StrictModel):
    type: Literal["ONNXModel"] = "ONNXModel"
    model_path: LocalPath
    onnx_file_name: str | None = None
    inference_settings: InferenceSettings | None = None
    model_attributes: dict[str, Any] | None = None


class PyTorchModelConfig(StrictModel):
    type: Literal["PyTorchModel"] = "PyTorchModel"
    #: A local file/folder, or (with ``model_loader``) any string the loader understands, as in Olive.
    model_path: LocalPathOrName | None = None
    model_file_format: Literal["PyTorch.EntireModel", "PyTorch.StateDict", "PyTorch.TorchScript"] = (
        "PyTorch.EntireModel"
    )
    model_loader: str | None = None
    model_script: LocalPath | None = None
    script_dir: LocalPath | None = None
    io_config: IOConfig | str | None = None
    dummy_inputs_func: str | None = None
    model_attributes: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _loadable(self) -> PyTorchModelConfig:
        if isinstance(self.io_config, IOConfig) and self.io_config.kv_cache:
            try:
                kv_cache_config(self.io_config.kv_cache, self.model_attributes)
            except ValidationError as exc:
                error = exc.errors(include_url=False)[0]
                where = ".".join(str(part) for part in error["loc"])
                raise ValueError(f"io_config.kv_cache.{where}: {error['msg']}") from None
            except ValueError as exc:
                raise ValueError(f"io_config.{exc}") from None
        if self.model_path is None and self.model_loader is None:
            raise ValueError("needs 'model_path' or 'model_loader' (a function in 'model_script')")
        if self.model_loader is not None and self.model_script is None:
            raise ValueError("'model_loader' needs 'model_script', the file that defines it")
        return self


#: Olive's ``DEFAULT_HF_TASK`` (olive/common/constants.py, 0.7 to 0.13): the task of an HfModel without one.
DEFAULT_HF_TASK = "text-generation-with-past"


class HfModelConfig(StrictModel):
    type: Literal["HfModel"] = "HfModel"
    model_path: LocalPath
    task: str = DEFAULT_HF_TASK
    load_kwargs: dict[str, Any] | None = None
    io_config: IOConfig | str | None = None
    #: A PEFT (LoRA) adapter folder: merged into the weights when the model is loaded in PyTorch
    #: (evaluation, OnnxConversion); ModelBuilder builds it as separate LoRA MatMuls, as Olive does.
    adapter_path: LocalPath | None = None
    model_attributes: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _kv_cache_task(self) -> HfModelConfig:
        # Olive reads io_config.kv_cache for with-past exports; Olivine's export derives the cache layout
        # from the model's config (Olive's names), so the setting only has to agree with the task.
        kv_cache = isinstance(self.io_config, IOConfig) and self.io_config.kv_cache
        if kv_cache and self.task not in ("text-generation-with-past", "causal-lm-with-past"):
            raise ValueError(
                f"io_config.kv_cache needs task text-generation-with-past (task is '{self.task}')"
            )
        return self


MODEL_TYPES = {name.lower(): name for name in ("ONNXModel", "PyTorchModel", "HfModel")}

InputModelConfig = Annotated[
    ONNXModelConfig | PyTorchModelConfig | HfModelConfig, Field(discriminator="type")
]


#: Olive's other model handlers (0.7 to 0.13): valid in Olive, not run by Olivine.
OLIVE_ONLY_MODEL_TYPES = (
    "CompositeModel",
    "DiffusersModel",
    "DistributedHfModel",
    "DistributedOnnxModel",
    "OpenVINOModel",
    "QNNModel",
    "QairtModel",
    "QairtPreparedModel",
    "SNPEModel",
    "TensorFlowModel",
)


def normalize_model(value: Any) -> Any:
    kind = value.get("type") if isinstance(value, dict) else None
    olive_only = {name.lower(): name for name in OLIVE_ONLY_MODEL_TYPES}
    if isinstance(kind, str) and kind.lower() in olive_only:
        raise NotSupportedError(
            f"model type '{olive_only[kind.lower()]}' (Olive's) is not supported by Olivine yet; "
            f"supported: {', '.join(sorted(MODEL_TYPES.values()))}",
            path="type",
        )
    flat = flatten_typed(value, MODEL_TYPES, what="model type")
    if isinstance(flat, dict) and flat.get("type") == "ONNXModel" and "use_ort_extensions" in flat:
        # Olive's switch for onnxruntime-extensions' custom operators: false (its default) is dropped, not
        # kept, so the model's identity does not change; true is refused.
        flat = dict(flat)
        if flat.pop("use_ort_extensions") is True:
            raise NotSupportedError(
                "onnxruntime-extensions' custom operators (Olive's use_ort_extensions) are not supported by "
                "Olivine yet; set false or drop the key",
                path="use_ort_extensions",
            )
    return flat
