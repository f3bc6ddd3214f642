"""Pass entries (``passes: {name: {type, ...}}``). Parameters are validated against each pass's own config
model when the workflow is resolved; here they are collected flat."""

from __future__ import annotations

from typing import Any

from pydantic import model_validator

from olivine.config.base import StrictModel

DEFAULT_VALUE = "DEFAULT_VALUE"
SEARCHABLE_VALUES = "SEARCHABLE_VALUES"

_ENTRY_KEYS = {"type", "config", "host", "evaluator", "output_name", "clean_run_cache", "disable_search"}


class PassEntry(StrictModel):
    type: str
    config: dict[str, Any] = {}
    host: Any = None
    evaluator: Any = None
    output_name: str | None = None
    clean_run_cache: bool = False
    disable_search: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _flatten(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        out = {k: v for k, v in value.items() if k in _ENTRY_KEYS}
        params: dict[str, Any] = dict(out.get("config") or {})
        for key, val in value.items():
            if key not in _ENTRY_KEYS:
                if key in params:
                    raise ValueError(f"'{key}' is given both flat and under 'config'")
                params[key] = val
        out["config"] = params
        return out

    @model_validator(mode="after")
    def _unsupported(self) -> PassEntry:
        if self.host is not None or self.evaluator is not None:
            raise ValueError("per-pass 'host' / 'evaluator' overrides are not supported by Olivine yet")
        return self
