"""A stand-in for the ``olive`` package so Olive user scripts (data and model scripts) import unchanged.

Olive's example scripts import a few names at their top level: ``olive.data.registry.Registry`` (data
components, served by Olivine's own registry), and names used as type hints or constants:
``olive.model.{OliveModelHandler, PyTorchModelHandler, ONNXModelHandler, ...}`` and
``olive.constants.Framework``. Installed only when the real ``olive`` package is absent; anything else a
script imports from ``olive`` fails with Python's own ImportError, which the caller reports with the
script's name.
"""

from __future__ import annotations

import enum
import importlib.machinery
import importlib.util
import sys
import threading
import types

_LOCK = threading.Lock()

#: Model handler classes Olive scripts name (as annotations, or in isinstance checks).
_MODEL_NAMES = (
    "OliveModelHandler",
    "PyTorchModelHandler",
    "ONNXModelHandler",
    "HfModelHandler",
    "DistributedOnnxModelHandler",
    "CompositeModelHandler",
    "OliveModel",
    "PyTorchModel",
    "ONNXModel",
    "ModelConfig",
)


class Framework(str, enum.Enum):
    """Olive's ``olive.constants.Framework`` values."""

    ONNX = "ONNX"
    PYTORCH = "PyTorch"
    QNN = "QNN"
    TENSORFLOW = "TensorFlow"
    SNPE = "SNPE"
    OPENVINO = "OpenVINO"


def _package(name: str) -> types.ModuleType:
    module = sys.modules.get(name)
    if module is None:
        module = types.ModuleType(name, "Olivine's stand-in so Olive user scripts import unchanged.")
        module.__path__ = []
        module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
        sys.modules[name] = module
        parent, _, leaf = name.rpartition(".")
        if parent:
            setattr(_package(parent), leaf, module)
    return module


def install() -> None:
    """Serve the ``olive`` names above from Olivine when Olive itself is not installed (idempotent)."""
    with _LOCK:
        if "olive.data.registry" in sys.modules:
            return
        try:
            if importlib.util.find_spec("olive") is not None:
                return
        except (ImportError, ValueError):
            return
        from olivine.data import registry

        _package("olive.data")
        sys.modules["olive.data.registry"] = registry
        sys.modules["olive.data"].registry = registry  # type: ignore[attr-defined]
        model = _package("olive.model")
        for name in _MODEL_NAMES:
            setattr(model, name, type(name, (), {"__module__": "olive.model"}))
        constants = _package("olive.constants")
        constants.Framework = Framework  # type: ignore[attr-defined]
