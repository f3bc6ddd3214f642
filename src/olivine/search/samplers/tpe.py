"""The TPE sampler (Optuna's ``TPESampler``, as Olive's ``tpe``): learns from the ranked objectives."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import optuna

from olivine.search.samplers.base import Sampler, SamplerSettings
from olivine.search.space import Choice, Point, SearchSpace

optuna.logging.set_verbosity(optuna.logging.WARNING)

_MAX_ASKS = 64  # TPE may repeat itself on a small space; then the first unproposed point is taken


class TPESampler(Sampler):
    """Each slot's option and each dimension is a categorical Optuna parameter; a trial maps to one point.

    Seeded (``seed``), so the same feedback gives the same proposals. ``multivariate``/``group`` are
    Optuna's (Olive's defaults: both true).
    """

    name: ClassVar[str] = "tpe"
    learns: ClassVar[bool] = True

    def __init__(self, space: SearchSpace, settings: SamplerSettings, directions: Sequence[bool]) -> None:
        super().__init__(space, settings, directions)
        with warnings.catch_warnings():
            # multivariate/group are flagged experimental by Optuna; Olive uses them by default.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(
                seed=settings.seed, multivariate=settings.multivariate, group=settings.group
            )
        names: list[Literal["minimize", "maximize"]] = [
            "maximize" if hib else "minimize" for hib in self.directions
        ] or ["minimize"]
        self._study = optuna.create_study(directions=names, sampler=sampler)
        self._trials: dict[int, int] = {}  # point index -> trial number

    def _ask(self) -> tuple[Any, Point]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            trial = self._study.ask()
            choices = []
            for slot in self.space.slots:
                option = 0
                if len(slot.options) > 1:
                    option = trial.suggest_categorical(slot.name, list(range(len(slot.options))))
                values = {}
                for dim in slot.options[option].dims:
                    pos = trial.suggest_categorical(
                        f"{slot.name}.{option}.{dim.param}", list(range(len(dim.choices)))
                    )
                    values[dim.param] = dim.choices[pos]
                choices.append(Choice(slot.name, option, values))
        return trial, self.space.point(self.space.index_of(choices))

    def _next(self) -> Point:
        for _ in range(_MAX_ASKS):
            trial, point = self._ask()
            if point.index not in self._trials:
                self._trials[point.index] = trial.number
                return point
            self._study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        fallback = next(i for i in range(len(self.space)) if i not in self._trials)
        self._trials[fallback] = -1
        return self.space.point(fallback)

    def tell(self, point: Point, values: Sequence[float] | None, *, pruned: bool = False) -> None:
        number = self._trials.get(point.index, -1)
        if number < 0:
            return
        if pruned:
            self._study.tell(number, state=optuna.trial.TrialState.PRUNED)
        elif values is None or any(math.isnan(v) for v in values):
            self._study.tell(number, state=optuna.trial.TrialState.FAIL)
        else:
            self._study.tell(number, list(values) or [0.0])
