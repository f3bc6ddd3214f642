"""The top-level run config (Olive's format)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import field_validator, model_validator

from olivine.config.base import StrictModel
from olivine.config.data import DataConfig
from olivine.config.datastores import DatastoreConfig
from olivine.config.engine import ENGINE_KEYS, EngineConfig
from olivine.config.evaluators import EvaluatorConfig
from olivine.config.model import InputModelConfig, normalize_model
from olivine.config.passes import PassEntry
from olivine.config.systems import SystemConfig, normalize_system
from olivine.config.typed import prefixed

_WORKFLOW_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: A workflow id becomes a folder name (and ``<id>/<timestamp>.json`` on datastores); far below NAME_MAX.
MAX_WORKFLOW_ID = 100


class RunConfig(StrictModel):
    workflow_id: str = "default_workflow"
    input_model: InputModelConfig
    systems: dict[str, SystemConfig] = {}
    data_configs: list[DataConfig] = []
    evaluators: dict[str, EvaluatorConfig] = {}
    passes: dict[str, PassEntry | list[PassEntry]] = {}
    engine: EngineConfig = EngineConfig()
    workflow_host: str | None = None
    azureml_client: dict[str, Any] | None = None
    datastores: dict[str, DatastoreConfig] = {}

    @model_validator(mode="before")
    @classmethod
    def _normalize(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        out = dict(value)
        flat = {k: out.pop(k) for k in list(out) if k in ENGINE_KEYS}
        if flat:
            engine = dict(out.get("engine") or {})
            for key, val in flat.items():
                if key in engine:
                    raise ValueError(f"engine key '{key}' is given both at the top level and under 'engine'")
                engine[key] = val
            out["engine"] = engine
        if "input_model" in out:
            out["input_model"] = prefixed("input_model", normalize_model, out["input_model"])
        if isinstance(out.get("systems"), dict):
            out["systems"] = {
                k: prefixed(f"systems.{k}", normalize_system, v) for k, v in out["systems"].items()
            }
        return out

    @field_validator("workflow_id")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        if not _WORKFLOW_ID.match(value):
            raise ValueError(
                f"workflow_id '{value}' may contain letters, digits, '_', '.', '-' and must start with a "
                "letter or digit (it becomes a folder and a data asset name)"
            )
        if len(value) > MAX_WORKFLOW_ID:
            raise ValueError(
                f"workflow_id is {len(value)} characters long; at most {MAX_WORKFLOW_ID} are allowed "
                "(it becomes a folder and a data asset name)"
            )
        return value

    @field_validator("data_configs")
    @classmethod
    def _unique_data(cls, value: list[DataConfig]) -> list[DataConfig]:
        names = [d.name for d in value]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"data config names must be unique; repeated: {', '.join(dup)}")
        return value

    def data_config(self, name: str) -> DataConfig | None:
        return next((d for d in self.data_configs if d.name == name), None)
