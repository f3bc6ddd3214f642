"""Events the engine emits while it runs. Hosts subscribe to them (progress, incremental export);
the engine itself never imports hosts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class EngineEvent:
    workflow_id: str


@dataclass(frozen=True)
class WorkflowStarted(EngineEvent):
    cache_dir: Path  # this workflow's cache folder (<cache_dir>/<workflow_id>)
    output_dir: Path
    passes: tuple[str, ...]


@dataclass(frozen=True)
class PassStarted(EngineEvent):
    pass_name: str
    pass_type: str
    index: int  # 1-based position in the candidate's chain
    total: int


@dataclass(frozen=True)
class PassFinished(EngineEvent):
    pass_name: str
    run_key: str
    run_dir: Path  # the finished run's folder in the cache (run.json + model)
    cached: bool
    duration_s: float


@dataclass(frozen=True)
class PassFailed(EngineEvent):
    pass_name: str
    run_key: str
    record_path: Path  # the failure record in the cache
    error: str


@dataclass(frozen=True)
class EvaluationFinished(EngineEvent):
    model_id: str
    record_path: Path  # the evaluation's JSON file in the cache
    metrics: dict[str, Any]
    cached: bool


@dataclass(frozen=True)
class WorkflowFinished(EngineEvent):
    output_dir: Path
    best_model_id: str | None
    metrics: dict[str, Any] = field(default_factory=dict)


Listener = Callable[[EngineEvent], None]


@dataclass(frozen=True)
class CandidateStarted(EngineEvent):
    index: int  # 1-based, in proposal order
    total: int | None  # how many candidates the search proposes at most (None: unknown)
    point: dict[str, Any]  # the searched dimensions, "<pass>.<param>" -> value


@dataclass(frozen=True)
class CandidateFinished(EngineEvent):
    index: int
    total: int | None
    record: dict[str, Any]  # the candidate's footprint record (see olivine.engine.footprint)
    best_id: str | None  # the best candidate so far (by olivine.search.ranking)
    best_metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PhaseChanged(EngineEvent):
    phase: str  # e.g. "evaluating input model: latency (latency) round 2/5"
