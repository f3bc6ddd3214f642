"""Olive user_script that runs an Olivine user_script's custom metric (loaded by Olive, in Olive's venv).

Olive calls ``evaluate(model, device, execution_providers)`` with the kwargs that
``olive_config.py`` put in ``evaluate_func_kwargs``: where Olivine's source is, which user_script and
function to call, and that function's own kwargs. The Olive model handler becomes an Olivine
``ModelHandle`` (same files), so both tools compute the metric with the same code.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
from types import ModuleType
from typing import Any

#: Olive handler class name -> Olivine model kind.
_KINDS = {"ONNXModelHandler": "onnx", "HfModelHandler": "hf", "PyTorchModelHandler": "pytorch"}
#: Olive's model type names are case-insensitive; Olivine's handles use these spellings.
_TYPE_NAMES = {"hfmodel": "HfModel", "onnxmodel": "ONNXModel", "pytorchmodel": "PyTorchModel"}


def evaluate(
    model: Any,
    device: Any,
    execution_providers: Any,
    *,
    olivine_src: str,
    olivine_user_script: str,
    olivine_func: str,
    olivine_context: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Any:
    """Call ``olivine_func`` of ``olivine_user_script`` on Olive's ``model``.

    ``olivine_context`` holds what Olivine offers a custom function besides Olive's arguments
    (``data_dir``, ``input_model`` as a model config); as in Olivine, each goes only to a function
    whose signature names it.
    """
    if olivine_src not in sys.path:
        sys.path.insert(0, olivine_src)
    from olivine.model.handle import ModelHandle

    func = getattr(_load(olivine_user_script), olivine_func)
    offered = dict(olivine_context or {})
    if "input_model" in offered:
        model_json = dict(offered["input_model"])
        model_json["type"] = _TYPE_NAMES.get(str(model_json["type"]).lower(), model_json["type"])
        offered["input_model"] = ModelHandle.from_json(model_json)
    params = inspect.signature(func).parameters
    extra = {k: v for k, v in offered.items() if k in params and k not in kwargs}
    device_name = str(getattr(device, "value", device) or "cpu")
    return func(to_olivine_handle(model), device_name, execution_providers, **extra, **kwargs)


def to_olivine_handle(model: Any) -> Any:
    """An Olivine ``ModelHandle`` for an Olive model handler (ONNX, Hugging Face or PyTorch)."""
    from olivine.model.handle import ModelHandle

    kind = _KINDS.get(type(model).__name__)
    if kind is None:
        raise TypeError(f"the Olive adapter cannot evaluate a {type(model).__name__}")
    config: dict[str, Any] = {"model_path": str(model.model_path)}
    if kind == "hf":
        config["task"] = getattr(model, "task", None) or "feature-extraction"
    return ModelHandle(kind=kind, config=config)  # type: ignore[arg-type]


def _load(path: str) -> ModuleType:
    """Import the user_script once per process (Olive re-loads this adapter for every evaluation, but
    the user_script's in-memory memos, such as its reference embeddings, must survive)."""
    name = "olivine_user_script_" + hashlib.sha256(path.encode()).hexdigest()[:16]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import user_script {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
