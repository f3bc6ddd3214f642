"""Olivine: model-optimization workflows from an Olive-format run config.

``import olivine`` is deliberately light: it imports no torch, onnxruntime, ray or azure.
Use :mod:`olivine.api` for the programmatic interface.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
