"""The walk in batches (for a spread search) proposes what the serial walk proposes, in the same order:
a sampler that learns (TPE) is asked one point at a time, a stop ends the walk at the same candidate."""

from __future__ import annotations

from typing import Any

import pytest

from olivine.config.engine import SearchStrategyConfig
from olivine.evaluate.results import MetricValue
from olivine.model.accelerator import Accelerator
from olivine.passes.base import PASSES
from olivine.search.ranking import Objective, Objectives
from olivine.search.samplers import SAMPLERS
from olivine.search.space import Dimension, PassOption, PassSlot
from olivine.search.strategy import Proposal, SearchWalk


def _slot(name: str, *dims: tuple[str, tuple[Any, ...]]) -> PassSlot:
    cls = PASSES.get("OnnxDynamicQuantization")
    return PassSlot(
        name, (PassOption("OnnxDynamicQuantization", cls, {}, tuple(Dimension(p, c) for p, c in dims)),)
    )


SLOTS = (
    _slot("a", ("per_channel", (True, False)), ("reduce_range", (True, False))),
    _slot("b", ("per_channel", (True, False))),
)


def _walk(strategy: dict[str, Any]) -> SearchWalk:
    config = SearchStrategyConfig(**strategy)
    objectives = Objectives((Objective("score", 1, True, "threshold", 0.5, 0.5),), {"score": 0.5})
    return SearchWalk(SLOTS, config, objectives, Accelerator(), SAMPLERS.get(config.sampler))


def _score(proposal: Proposal) -> float:
    return (proposal.number % 3) / 2  # 0.5, 1.0, 0.0, ...: deterministic feedback


def _drive(walk: SearchWalk, width: int) -> tuple[list[tuple[int, str]], list[int]]:
    """Tell every proposal in order (stopping as the engine does); the proposals told and batch sizes."""
    told: list[tuple[int, str]] = []
    sizes: list[int] = []
    for batch in walk.batches(width):
        sizes.append(len(batch))
        for proposal in batch:
            if walk.stopped:
                break
            told.append((proposal.number, repr(sorted(proposal.described.items()))))
            walk.tell(proposal, {"score": MetricValue(_score(proposal), 1, True)})
    return told, sizes


@pytest.mark.parametrize("sampler", ["sequential", "random", "tpe"])
@pytest.mark.parametrize("order", ["joint", "pass-by-pass"])
def test_walk_batches_propose_what_the_serial_walk_proposes(sampler: str, order: str) -> None:
    strategy = {
        "sampler": sampler,
        "execution_order": order,
        "seed": 7,
        "max_samples": 3 if sampler == "tpe" else 0,
    }
    serial, serial_sizes = _drive(_walk(strategy), 1)
    spread, sizes = _drive(_walk(strategy), 3)
    assert spread == serial and set(serial_sizes) == {1}
    if sampler == "tpe":
        assert set(sizes) == {1}  # TPE proposes from each result: one at a time
    else:
        assert max(sizes) == 3


def test_walk_batches_stop_at_the_candidate_that_meets_the_goals() -> None:
    strategy = {"sampler": "sequential", "stop_when_goals_met": True}
    serial, _ = _drive(_walk(strategy), 1)
    spread, sizes = _drive(_walk(strategy), 4)
    assert spread == serial == serial[:1]  # candidate 1 scores 0.5: it meets the goal
    assert sizes == [4]  # proposed ahead, never told: the engine drops those results


def test_walk_batches_respect_max_iter() -> None:
    strategy = {"sampler": "sequential", "max_iter": 3}
    serial, _ = _drive(_walk(strategy), 1)
    spread, sizes = _drive(_walk(strategy), 2)
    assert spread == serial and len(serial) == 3 and sizes == [2, 1]
