"""Finding the local-path fields (:data:`olivine.config.base.LocalPath`) in a validated config."""

from __future__ import annotations

import typing
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from olivine.config.base import LocalPathMarker


def _marker(annotation: Any, metadata: list[Any]) -> LocalPathMarker | None:
    found = next((m for m in metadata if isinstance(m, LocalPathMarker)), None)
    stack = [annotation]
    while stack and found is None:
        ann = stack.pop()
        if typing.get_origin(ann) is typing.Annotated:
            found = next((m for m in typing.get_args(ann)[1:] if isinstance(m, LocalPathMarker)), None)
        if typing.get_origin(ann) in (typing.Union, __import__("types").UnionType):
            stack.extend(typing.get_args(ann))
    return found


def name_allowed(owner: BaseModel, field_name: str) -> bool:
    """Whether ``owner.field_name`` may hold a plain name instead of an existing local path."""
    field = type(owner).model_fields[field_name]
    marker = _marker(field.annotation, field.metadata)
    return marker is not None and marker.name_allowed


def iter_local_paths(model: BaseModel, prefix: str = "") -> Iterator[tuple[str, BaseModel, str, str]]:
    """Yield ``(key path, owner model, field name, value)`` for every set local-path field, depth first."""
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        path = f"{prefix}.{name}" if prefix else name
        if isinstance(value, str) and _marker(field.annotation, field.metadata) is not None:
            yield path, model, name, value
        else:
            yield from _iter_value(value, path)


def _iter_value(value: Any, path: str) -> Iterator[tuple[str, BaseModel, str, str]]:
    if isinstance(value, BaseModel):
        yield from iter_local_paths(value, path)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _iter_value(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _iter_value(item, f"{path}.{index}")


def path_text_problem(value: str) -> str | None:
    """Why ``value`` cannot name a file on this system (a NUL byte, a part over 255 bytes), or None.

    The operating system's own refusal ("embedded null byte", "File name too long") came as an internal
    error from wherever the path was first used."""
    if "\x00" in value:
        return "a path cannot contain a NUL byte"
    for part in value.replace("\\", "/").split("/"):
        if len(part.encode("utf-8", "surrogateescape")) > 255:
            return f"the path part {part[:40]!r}... is longer than 255 bytes (the file system's limit)"
    return None
