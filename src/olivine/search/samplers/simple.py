"""The sequential (exhaustive, Olive's order) and random samplers."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import ClassVar

from olivine.search.samplers.base import Sampler, SamplerSettings
from olivine.search.space import Point, SearchSpace


class SequentialSampler(Sampler):
    """Every point in index order (Olive's order), up to ``max_samples``."""

    name: ClassVar[str] = "sequential"

    def _next(self) -> Point:
        return self.space.point(self.suggested)


class RandomSampler(Sampler):
    """Points drawn without replacement with a seeded generator; the same draws as Olive's random
    sampler for the same seed and space (``Random(seed)``, ``randrange`` over the remaining indices)."""

    name: ClassVar[str] = "random"

    def __init__(self, space: SearchSpace, settings: SamplerSettings, directions: Sequence[bool]) -> None:
        super().__init__(space, settings, directions)
        self._rng = random.Random(settings.seed)
        self._available = list(range(len(space)))

    def _next(self) -> Point:
        index = self._available.pop(self._rng.randrange(len(self._available)))
        return self.space.point(index)
