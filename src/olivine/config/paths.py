"""Finding the local-path fields (:data:`olivine.config.base.LocalPath`) in a validated config."""

from __future__ import annotations

import typing
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from olivine.config.base import LOCAL_PATH


def _is_local_path(annotation: Any, metadata: list[Any]) -> bool:
    if LOCAL_PATH in metadata:
        return True
    stack = [annotation]
    while stack:
        ann = stack.pop()
        if typing.get_origin(ann) is typing.Annotated and LOCAL_PATH in typing.get_args(ann)[1:]:
            return True
        if typing.get_origin(ann) in (typing.Union, __import__("types").UnionType):
            stack.extend(typing.get_args(ann))
    return False


def iter_local_paths(model: BaseModel, prefix: str = "") -> Iterator[tuple[str, BaseModel, str, str]]:
    """Yield ``(key path, owner model, field name, value)`` for every set local-path field, depth first."""
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        path = f"{prefix}.{name}" if prefix else name
        if isinstance(value, str) and _is_local_path(field.annotation, field.metadata):
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
