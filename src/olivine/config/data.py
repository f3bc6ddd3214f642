"""Data configs as Olive writes them. Component parameters are checked against each component's own
parameter model when the workflow is resolved (see :mod:`olivine.data.components`)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import field_validator, model_validator

from olivine.config.base import LocalPath, StrictModel

_NAME = re.compile(r"^[A-Za-z0-9_]+$")


class ComponentConfig(StrictModel):
    """One data component: ``{type, params}``; Olive also allows the params flat beside ``type``."""

    type: str | None = None
    params: dict[str, Any] = {}

    @model_validator(mode="before")
    @classmethod
    def _flatten(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        out: dict[str, Any] = {}
        params: dict[str, Any] = dict(value.get("params") or {})
        for key, val in value.items():
            if key == "type":
                out["type"] = val
            elif key != "params":
                if key in params:
                    raise ValueError(f"'{key}' is given both flat and under 'params'")
                params[key] = val
        out["params"] = params
        return out


class DataConfig(StrictModel):
    name: str
    type: str = "DataContainer"
    user_script: LocalPath | None = None
    script_dir: LocalPath | None = None
    load_dataset_config: ComponentConfig | None = None
    pre_process_data_config: ComponentConfig | None = None
    post_process_data_config: ComponentConfig | None = None
    dataloader_config: ComponentConfig | None = None

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"data config name '{value}' may contain only letters, digits and '_'")
        return value
