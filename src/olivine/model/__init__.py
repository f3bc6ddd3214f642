"""Model handles (frozen values) and the loaders that turn them into runnable objects."""

from olivine.model.handle import ModelHandle

__all__ = ["ModelHandle"]
