"""Run a model on numpy inputs: onnxruntime for ONNX models, PyTorch for PyTorch / Hugging Face models.

Evaluation and user scripts use one interface for both, so a custom metric does not care which kind of
model it is given.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from olivine.config.session import normalize_session_options
from olivine.errors import ModelLoadError
from olivine.model.accelerator import Accelerator
from olivine.model.handle import ModelHandle


class Runner(Protocol):
    input_names: list[str]
    output_names: list[str]

    def run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run one batch; ``feed`` maps input names to arrays; returns the outputs in order."""


class OnnxRunner:
    def __init__(
        self,
        model: ModelHandle,
        accelerator: Accelerator,
        *,
        session_options: dict[str, Any] | None = None,
        provider_options: list[dict[str, Any]] | None = None,
        log_severity_level: int = 3,
    ) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = log_severity_level
        settings = dict((model.config.get("inference_settings") or {}).get("session_options") or {})
        settings.update(session_options or {})
        try:
            # A handle's settings may come from a model config another tool wrote: check them here too.
            settings = normalize_session_options(settings)
        except ValueError as exc:
            raise ModelLoadError(f"inference settings of {model.onnx_path}: {exc}") from None
        for key, value in settings.items():
            if key == "graph_optimization_level":
                options.graph_optimization_level = ort.GraphOptimizationLevel(value)
            elif key == "execution_mode":
                options.execution_mode = ort.ExecutionMode(value)
            elif key == "execution_order":
                options.execution_order = ort.ExecutionOrder(value)
            elif key == "extra_session_config":
                for k, v in dict(value).items():
                    options.add_session_config_entry(str(k), str(v))
            else:
                setattr(options, key, value)
        available = set(ort.get_available_providers())
        providers = [ep for ep in accelerator.execution_providers if ep in available]
        if not providers:
            raise ModelLoadError(
                f"none of the execution providers {list(accelerator.execution_providers)} is available "
                f"in this onnxruntime (available: {sorted(available)})"
            )
        try:
            self.session = ort.InferenceSession(
                str(model.onnx_path),
                sess_options=options,
                providers=providers,
                provider_options=provider_options,
            )
        except Exception as exc:  # onnxruntime raises its own exception types without a common base
            raise ModelLoadError(f"onnxruntime could not load {model.onnx_path}: {exc}") from exc
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._input_types = {i.name: i.type for i in self.session.get_inputs()}

    def run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        feed = {k: _cast(v, self._input_types[k]) for k, v in feed.items() if k in self._input_types}
        return list(self.session.run(None, feed))


_ORT_TO_NUMPY = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


def _cast(value: np.ndarray, ort_type: str) -> np.ndarray:
    dtype = _ORT_TO_NUMPY.get(ort_type)
    arr = np.asarray(value)
    return arr.astype(dtype, copy=False) if dtype is not None and arr.dtype != dtype else arr


class TorchRunner:
    """Runs a PyTorch or Hugging Face model under ``torch.inference_mode`` on the CPU."""

    def __init__(self, model: ModelHandle) -> None:
        from olivine.model.loaders import torch_input_names

        self.module = _shared_module(model)
        self.input_names = torch_input_names(model, self.module)
        self.output_names: list[str] = []

    def run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        import torch

        from olivine.model.loaders import call_module

        tensors = {
            k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in feed.items() if k in self.input_names
        }
        with torch.inference_mode():
            out = call_module(self.module, self.input_names, tensors)
        return _flatten_outputs(out)


# The last PyTorch module loaded for inference, keyed by the handle and its files' sizes and times.
# Evaluation opens several runners on one model (latency, then a custom metric that computes reference
# outputs); loading a Hugging Face model costs seconds each time. Runners never modify the module.
_LAST_MODULE: dict[str, Any] = {}


def _shared_module(model: ModelHandle) -> Any:
    import json

    from olivine.model.loaders import load_torch_module

    stamps = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in model.files()]
    key = json.dumps([model.to_json(), stamps], sort_keys=True, default=str)
    if key not in _LAST_MODULE:
        _LAST_MODULE.clear()  # keep one model in memory at most
        _LAST_MODULE[key] = load_torch_module(model)
    return _LAST_MODULE[key]


def _flatten_outputs(out: Any) -> list[np.ndarray]:
    import torch

    if isinstance(out, torch.Tensor):
        return [out.detach().cpu().numpy()]
    if hasattr(out, "to_tuple"):
        out = out.to_tuple()
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, list | tuple):
        flat: list[np.ndarray] = []
        for item in out:
            flat.extend(_flatten_outputs(item))
        return flat
    raise ModelLoadError(f"cannot convert a model output of type {type(out).__name__} to arrays")


def open_runner(
    model: ModelHandle,
    accelerator: Accelerator | None = None,
    *,
    session_options: dict[str, Any] | None = None,
) -> Runner:
    """A :class:`Runner` for ``model``: onnxruntime for ONNX, PyTorch otherwise."""
    if model.kind == "onnx":
        return OnnxRunner(model, accelerator or Accelerator(), session_options=session_options)
    return TorchRunner(model)
