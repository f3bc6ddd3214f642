"""Reading ``footprint.json`` (schema ``olivine.footprint/2``) into typed, frozen records.

The report only reads what the engine decided (frontier, best, goals met, resolved goal values); it never
ranks candidates itself. Keys the schema does not name (Olive-style keys kept alongside) are ignored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from olivine.errors import UserInputError

SCHEMA = "olivine.footprint/2"
FOOTPRINT_NAME = "footprint.json"

Status = Literal["evaluated", "failed", "invalid", "pruned"]


class _Record(BaseModel):
    # Frozen, and tolerant of extra keys: the footprint may carry Olive-style keys beside the contract's.
    model_config = ConfigDict(frozen=True, extra="ignore")


class Goal(_Record):
    type: str
    value: float
    resolved: float | None = None


class Objective(_Record):
    key: str
    priority: int
    higher_is_better: bool
    goal: Goal | None = None


class Metric(_Record):
    value: float | None
    spread: float | None = None
    rounds: list[float] | None = None
    priority: int = -1
    higher_is_better: bool = False


class ChainStep(_Record):
    name: str
    type: str
    params: dict[str, Any] = Field(default_factory=dict)
    run_key: str | None = None


class CandidateRecord(_Record):
    id: str
    index: int
    chain: list[ChainStep] = Field(default_factory=list)
    point: dict[str, Any] = Field(default_factory=dict)
    model_id: str | None = None
    status: Status
    error: str | None = None
    metrics: dict[str, Metric] = Field(default_factory=dict)
    meets_goals: bool | None = None
    on_frontier: bool = False
    is_best: bool = False

    def value(self, key: str) -> float | None:
        metric = self.metrics.get(key)
        return None if metric is None else metric.value


class Search(_Record):
    sampler: str | None = None
    execution_order: str | None = None
    seed: int | None = None
    space_size: int | None = None


class Machine(_Record):
    cpu: str = ""
    cpu_flags: list[str] = Field(default_factory=list)
    cores: int | None = None
    python: str = ""
    libraries: dict[str, str] = Field(default_factory=dict)


class PlayoffRecord(_Record):
    """The finalists re-timed head to head after the walk (see olivine.engine.playoff)."""

    objective: str
    rounds: int
    finalists: list[str] = Field(default_factory=list)
    metrics: dict[str, dict[str, Metric]] = Field(default_factory=dict)
    walk_best: str | None = None


class Footprint(_Record):
    schema_: Literal["olivine.footprint/2"] = Field(alias="schema")
    workflow_id: str
    search: Search | None = None
    objectives: list[Objective] = Field(default_factory=list)
    input: CandidateRecord | None = None
    candidates: list[CandidateRecord] = Field(default_factory=list)
    frontier: list[str] = Field(default_factory=list)
    best: str | None = None
    machine: Machine = Field(default_factory=Machine)
    playoff: PlayoffRecord | None = None

    def ranked_objectives(self) -> list[Objective]:
        return sorted((o for o in self.objectives if o.priority > 0), key=lambda o: o.priority)

    def records(self) -> list[CandidateRecord]:
        """The input model's record (when evaluated) then every candidate, in proposal order."""
        return ([self.input] if self.input is not None else []) + list(self.candidates)

    def find(self, candidate_id: str | None) -> CandidateRecord | None:
        return next((r for r in self.records() if r.id == candidate_id), None)


def find_footprint(path: Path) -> Path:
    """The footprint file for ``path``: the file itself, ``<dir>/footprint.json``, or, for a folder that
    ``olivine fetch`` filled, ``<dir>/output/footprint.json``.

    Raises:
        UserInputError: none of those exists.
    """
    if path.is_file():
        return path
    for candidate in (path / FOOTPRINT_NAME, path / "output" / FOOTPRINT_NAME):
        if candidate.is_file():
            return candidate
    raise UserInputError(
        f"{path}: no {FOOTPRINT_NAME} here (nor in {path / 'output'}); give an output folder of a run, "
        "a folder filled by `olivine fetch`, a job id or an export URL"
    )


def load_footprint(path: Path) -> Footprint:
    """Read and validate a footprint file.

    Raises:
        UserInputError: unreadable, not JSON, or not schema ``olivine.footprint/2``; names the file and key.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserInputError(f"{path}: cannot read the footprint: {exc.strerror or exc}") from exc
    return parse_footprint(text, str(path))


def parse_footprint(text: str, source: str) -> Footprint:
    """Validate footprint JSON text; ``source`` names it in errors."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserInputError(f"{source}: not JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(data, dict):
        raise UserInputError(f"{source}: a footprint is a JSON object, got {type(data).__name__}")
    schema = data.get("schema")
    if schema != SCHEMA:
        raise UserInputError(
            f"{source}: schema: expected '{SCHEMA}', got {json.dumps(schema)} "
            "(a footprint written before search support has no candidates to report; run the workflow again)"
        )
    try:
        return Footprint.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise UserInputError(f"{source}: {where}: {first['msg']}") from None
