"""Input model configs: ``ONNXModel``, ``PyTorchModel``, ``HfModel`` (Olive's names and keys)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from olivine.config.base import LocalPath, LocalPathOrName, StrictModel
from olivine.config.session import SessionOptions
from olivine.config.typed import flatten_typed


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
    #: Olive's KV-cache inputs/outputs for generative models (bool or a KVCacheConfig mapping).
    kv_cache: bool | dict[str, Any] | None = None

    @model_validator(mode="after")
    def _no_kv_cache(self) -> IOConfig:
        if self.kv_cache:
            raise ValueError("'kv_cache' (KV-cache inputs and outputs) is not supported by Olivine yet")
        return self


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


MODEL_TYPES = {name.lower(): name for name in ("ONNXModel", "PyTorchModel", "HfModel")}

InputModelConfig = Annotated[
    ONNXModelConfig | PyTorchModelConfig | HfModelConfig, Field(discriminator="type")
]


def normalize_model(value: Any) -> Any:
    return flatten_typed(value, MODEL_TYPES, what="model type")
