"""Shared pieces of the config models: strictness and the marker for local file paths."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Every config model forbids unknown keys: a typo is an error, never a silent default. NaN and
    infinite numbers are refused everywhere: no setting means anything with them."""

    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, protected_namespaces=(), allow_inf_nan=False
    )


class LocalPathMarker:
    """Metadata marking a field as a local file or folder the workflow reads.

    The remote bundler walks the validated config for these fields to copy each file into the bundle
    and rewrite the path, so the worker never reads the submitter's original paths.

    Args:
        name_allowed: a value that is not an existing local path is kept as a plain name (Olive's
            "string name" resource: e.g. a ``PyTorchModel.model_path`` handed to its ``model_loader``).
    """

    def __init__(self, *, name_allowed: bool = False) -> None:
        self.name_allowed = name_allowed

    def __repr__(self) -> str:
        return "LocalPathOrName" if self.name_allowed else "LocalPath"


LOCAL_PATH = LocalPathMarker()
LOCAL_PATH_OR_NAME = LocalPathMarker(name_allowed=True)

#: A path to a local file or folder (relative paths are relative to the config file's folder).
LocalPath = Annotated[str, LOCAL_PATH]
#: A local path if one exists under that name, else a name passed through unchanged.
LocalPathOrName = Annotated[str, LOCAL_PATH_OR_NAME]


def params_of(value: Any) -> dict[str, Any]:
    """Olive writes component parameters either under ``params``/``config`` or flat beside ``type``."""
    if not isinstance(value, dict):
        return {}
    return dict(value)
