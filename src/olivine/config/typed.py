"""Normalising Olive's ``{type, config: {...}}`` / ``{type, ...flat}`` objects before validation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from olivine.errors import ConfigError


def flatten_typed(value: Any, allowed: dict[str, str], *, what: str, nested_key: str = "config") -> Any:
    """Return ``value`` with ``type`` canonicalised (case-insensitive) and ``config`` merged flat.

    Args:
        value: the raw mapping from the config file.
        allowed: lower-cased type name -> canonical type name.
        what: the family, for the error message ("model type", "system type").
        nested_key: the key Olive nests parameters under.
    """
    if not isinstance(value, dict):
        return value
    out = dict(value)
    raw_type = out.get("type")
    if raw_type is None:
        raise ConfigError(
            f"missing 'type'; allowed {what}s: {', '.join(sorted(allowed.values()))}", path="type"
        )
    if not isinstance(raw_type, str) or raw_type.lower() not in allowed:
        raise ConfigError(
            f"unknown {what} '{raw_type}'; allowed: {', '.join(sorted(allowed.values()))}", path="type"
        )
    out["type"] = allowed[raw_type.lower()]
    nested = out.pop(nested_key, None)
    if nested is not None:
        if not isinstance(nested, dict):
            raise ConfigError(f"'{nested_key}' must be a mapping", path=nested_key)
        for key, val in nested.items():
            if key in out:
                raise ConfigError(f"'{key}' is given both flat and under '{nested_key}'", path=key)
            out[key] = val
    return out


def prefixed(path: str, fn: Callable[[Any], Any], value: Any) -> Any:
    """Call ``fn(value)``; a :class:`ConfigError` it raises gets ``path`` in front of its key path."""
    try:
        return fn(value)
    except ConfigError as exc:
        full = f"{path}.{exc.path}" if exc.path else path
        raise type(exc)(exc.message, path=full, file=exc.file) from None
