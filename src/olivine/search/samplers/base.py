"""The sampler contract: propose points of one :class:`~olivine.search.space.SearchSpace`, hear back."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from olivine.search.space import Point, SearchSpace


@dataclass(frozen=True)
class SamplerSettings:
    """What every sampler reads (Olive's ``sampler_config``)."""

    max_samples: int = 0  # 0 = the whole space
    seed: int = 1
    multivariate: bool = True  # TPE only
    group: bool = True  # TPE only


class Sampler(ABC):
    """Proposes distinct points of ``space`` until it is exhausted or ``max_samples`` were proposed.

    Args:
        space: the space to sample.
        settings: sampler settings (seeded: the same settings and feedback give the same proposals).
        directions: ``higher_is_better`` of each ranked objective, in priority order (for samplers that
            learn from results).
    """

    name: ClassVar[str]
    #: True when proposals depend on the feedback of earlier ones (TPE): such a sampler is asked for one
    #: point at a time, so a spread search proposes exactly what the serial one does.
    learns: ClassVar[bool] = False

    def __init__(self, space: SearchSpace, settings: SamplerSettings, directions: Sequence[bool]) -> None:
        self.space = space
        self.settings = settings
        self.directions = tuple(directions)
        self.suggested = 0

    @property
    def limit(self) -> int:
        size = len(self.space)
        return min(size, self.settings.max_samples) if self.settings.max_samples > 0 else size

    @property
    def should_stop(self) -> bool:
        return self.suggested >= self.limit

    def suggest(self) -> Point | None:
        """The next point, or None when the sampler is done."""
        if self.should_stop:
            return None
        point = self._next()
        self.suggested += 1
        return point

    @abstractmethod
    def _next(self) -> Point:
        """A point not proposed before (only called while :attr:`should_stop` is false)."""

    def tell(self, point: Point, values: Sequence[float] | None, *, pruned: bool = False) -> None:
        """Feedback: the ranked objectives' values (priority order), or None when the point failed or was
        invalid; ``pruned`` when it was stopped early (it failed a goal)."""
        return None
