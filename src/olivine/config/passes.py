"""Pass entries (``passes: {name: {type, ...}}``). Parameters are validated against each pass's own config
model when the workflow is resolved; here they are collected flat.

Olive 0.13's per-pass ``host`` and ``evaluator`` are read here and given their meaning by
:func:`olivine.config.workflow.RunConfig` (see ``_pass_overrides`` there)."""

from __future__ import annotations

from typing import Any

from pydantic import model_validator

from olivine.config.base import StrictModel
from olivine.config.evaluators import EvaluatorConfig
from olivine.config.systems import SystemConfig, normalize_system
from olivine.config.typed import prefixed

DEFAULT_VALUE = "DEFAULT_VALUE"
SEARCHABLE_VALUES = "SEARCHABLE_VALUES"

_ENTRY_KEYS = {"type", "config", "host", "evaluator", "output_name", "clean_run_cache", "disable_search"}


class PassEntry(StrictModel):
    type: str
    config: dict[str, Any] = {}
    #: Olive's per-pass host: a name in ``systems`` or an inline system (only a LocalSystem is accepted).
    host: str | SystemConfig | None = None
    #: Olive's per-pass evaluator: a name in ``evaluators`` or an inline evaluator.
    evaluator: str | EvaluatorConfig | None = None
    output_name: str | None = None
    clean_run_cache: bool = False
    disable_search: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _flatten(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        # null for an entry key with a default means not given, as for a parameter.
        out = {k: v for k, v in value.items() if k in _ENTRY_KEYS and not (v is None and k != "type")}
        nested = out.get("config")
        if nested is not None and not isinstance(nested, dict):
            raise ValueError(
                f"'config' holds the pass's parameters as a mapping, got {type(nested).__name__}"
            )
        params: dict[str, Any] = dict(nested or {})
        for key, val in value.items():
            if key not in _ENTRY_KEYS:
                if key in params:
                    raise ValueError(f"'{key}' is given both flat and under 'config'")
                params[key] = val
        out["config"] = params
        if isinstance(out.get("host"), dict):
            out["host"] = prefixed("host", normalize_system, out["host"])
        return out
