"""Samplers: a plugin family in the lazy registry (the module of a sampler is imported when it is used,
so the TPE sampler's optuna is only needed by configs that ask for it)."""

from __future__ import annotations

from olivine.registry import Registry
from olivine.search.samplers.base import Sampler

SAMPLERS: Registry[type[Sampler]] = Registry("sampler")
SAMPLERS.register("sequential", "olivine.search.samplers.simple:SequentialSampler")
SAMPLERS.register("random", "olivine.search.samplers.simple:RandomSampler")
SAMPLERS.register("tpe", "olivine.search.samplers.tpe:TPESampler", extra="search")

__all__ = ["SAMPLERS", "Sampler"]
