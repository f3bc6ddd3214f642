"""Candidates: a pass chain with concrete parameters, what realising it produced, and its record in
``footprint.json`` (schema ``olivine.footprint/2``, see :mod:`olivine.engine.footprint`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from olivine.engine.cache import CachedRun
from olivine.evaluate.results import MetricValue
from olivine.model.handle import ModelHandle
from olivine.redaction import redact_config
from olivine.search.space import ResolvedPass

Status = Literal["evaluated", "failed", "invalid", "pruned"]
INPUT_ID = "input"


def candidate_id(index: int) -> str:
    return f"c{index:04d}"


@dataclass
class Candidate:
    """One candidate (or the input model, id ``input``). Its identity is the model id of the chain's
    last run; ``status``: ``evaluated`` (realised, and evaluated when there is an evaluator), ``failed``
    (a pass or the evaluation failed: ``error``), ``invalid`` (the pass refused the combination:
    ``error``), ``pruned`` (it failed a goal on the untimed metrics, so its timed metrics were skipped)."""

    id: str
    index: int
    chain: tuple[ResolvedPass, ...] = ()
    point: dict[str, Any] | None = None
    status: Status = "evaluated"
    model_id: str | None = None
    model: ModelHandle | None = None
    runs: tuple[CachedRun, ...] = ()
    error: str | None = None
    metrics: dict[str, MetricValue] | None = None
    meets_goals: bool | None = None
    on_frontier: bool = False
    is_best: bool = False
    # Where a spread search's task realised it (see olivine.engine.task_work.candidate_task): node, the
    # CPUs it was pinned to, threads seen allowed outside them, whether it was evaluated there (not
    # read from the cache), and its start/end (Unix time). None in a serial search.
    ran_on: dict[str, Any] | None = None
    # When its timed metrics ran (Unix time, start and end; None: not timed, or read from the cache).
    # Not in the footprint record by itself: the local pool puts it in ``ran_on``.
    timed_span: tuple[float, float] | None = None

    @property
    def label(self) -> str:
        if self.id == INPUT_ID:
            return "input model"
        return ">".join(step.name for step in self.chain) or "-"

    @property
    def run_dir(self) -> Path | None:
        return self.runs[-1].run_dir if self.runs else None

    @property
    def pass_name(self) -> str | None:
        return self.chain[-1].name if self.chain else None

    @property
    def pass_type(self) -> str | None:
        return self.chain[-1].type if self.chain else None

    @property
    def rankable(self) -> dict[str, MetricValue] | None:
        """Metrics to rank by, or None when the candidate cannot be ranked (failed, invalid)."""
        if self.status in ("failed", "invalid"):
            return None
        return self.metrics if self.metrics is not None else {}

    def metrics_json(self) -> dict[str, dict[str, Any]] | None:
        if self.metrics is None:
            return None
        return {key: value.to_json() for key, value in self.metrics.items()}

    def record(self) -> dict[str, Any]:
        """The candidate's record in ``footprint.json`` (``ran_on`` only when a spread search's task
        realised it)."""
        run_keys = [run.key for run in self.runs] + [None] * (len(self.chain) - len(self.runs))
        record: dict[str, Any] = {
            "id": self.id,
            "index": self.index,
            "chain": [
                {
                    "name": s.name,
                    "type": s.type,
                    "params": redact_config(s.canonical_config()),
                    "run_key": key,
                }
                for s, key in zip(self.chain, run_keys, strict=True)
            ],
            "point": dict(self.point or {}),
            "model_id": self.model_id,
            "status": self.status,
            "error": self.error,
            "metrics": {
                key: {
                    "value": v.value,
                    "spread": v.spread,
                    "rounds": list(v.rounds) if v.rounds is not None else None,
                    "priority": v.priority,
                    "higher_is_better": v.higher_is_better,
                }
                for key, v in (self.metrics or {}).items()
            },
            "meets_goals": self.meets_goals,
            "on_frontier": self.on_frontier,
            "is_best": self.is_best,
            "model_config": self.model.to_json() if self.model is not None else None,
        }
        if self.ran_on is not None:
            record["ran_on"] = dict(self.ran_on)
        return record

    def node(self, best_model_id: str | None) -> dict[str, Any]:
        """The Olive-style footprint node (``nodes`` in footprint.json, kept for existing readers)."""
        parent = self.runs[-1].record.get("input_model_id") if self.runs else None
        return {
            "model_id": self.model_id,
            "parent_model_id": parent,
            "from_pass": self.pass_type,
            "pass_name": self.pass_name,
            "pass_config": redact_config(self.chain[-1].canonical_config()) if self.chain else None,
            "metrics": self.metrics_json(),
            "is_best": self.model_id is not None and self.model_id == best_model_id,
            "model_config": self.model.to_json() if self.model is not None else None,
        }
