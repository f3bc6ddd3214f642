"""Load a run config file (JSON or YAML) into a validated :class:`RunConfig`.

Every problem becomes one :class:`ConfigError` naming the file and the key path.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from olivine.config.workflow import RunConfig
from olivine.errors import ConfigError


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Parse a JSON or YAML file into a mapping (YAML for ``.yaml``/``.yml``, else JSON)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError("config file not found", file=str(path))
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"not a text file: byte {exc.start} is not UTF-8 (a config is JSON or YAML text)", file=str(p)
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the config file: {exc.strerror or exc}", file=str(p)) from None
    if "\x00" in text:
        raise ConfigError(
            "not a text file: it contains NUL bytes (a config is JSON or YAML text)", file=str(p)
        )
    try:
        if p.suffix.lower() in (".yaml", ".yml"):
            data = _yaml_without_duplicates(text)
        else:
            data = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except _DuplicateKey as exc:
        # JSON and YAML readers keep the last of two equal keys: one of the two settings would be lost.
        raise ConfigError(
            f"the key '{exc.key}' is given twice in one mapping{exc.where}; only one can hold", file=str(p)
        ) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", file=str(p)
        ) from exc
    except Exception as exc:  # yaml.YAMLError has no stable import-free base here
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"invalid YAML: {first}", file=str(p)) from exc
    if not isinstance(data, dict):
        raise ConfigError("the top level must be a mapping of config keys", file=str(p))
    return data


class _DuplicateKey(Exception):
    def __init__(self, key: str, where: str = "") -> None:
        super().__init__(key)
        self.key = key
        self.where = where


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


def _yaml_without_duplicates(text: str) -> Any:
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def mapping(loader: Any, node: Any, deep: bool = False) -> Any:
        seen: set[str] = set()
        for key, _ in node.value:  # the keys written here (a '<<' merge may be overridden on purpose)
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                if key.value in seen:
                    raise _DuplicateKey(key.value, f" (line {key.start_mark.line + 1})")
                seen.add(key.value)
        return loader.construct_mapping(node, deep=deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return yaml.load(text, Loader=Loader)


def format_validation_error(exc: ValidationError) -> tuple[str, str]:
    """Return (key path, message) for the first error, mentioning how many more there are.

    A key that Olive itself removed is reported first (with the Olive version and its successor), since
    the other errors of an old config usually follow from it.
    """
    from olivine.config.removed import olive_only_key, removed_key

    every = exc.errors(include_url=False)
    every_path = [error_path(error["loc"]) for error in every]
    kept = _same_branch(every, every_path)
    errors, paths = [every[i] for i in kept], [every_path[i] for i in kept]
    removed: list[tuple[int, Any]] = [
        (i, found)
        for i, error in enumerate(errors)
        if error["type"] == "extra_forbidden" and (found := removed_key(paths[i])) is not None
    ]
    removed = removed or [
        (i, other)
        for i, error in enumerate(errors)
        if error["type"] == "extra_forbidden" and (other := olive_only_key(paths[i])) is not None
    ]
    index = removed[0][0] if removed else 0
    first, path = errors[index], paths[index]
    kind = first["type"]
    if removed:
        message = removed[0][1].message()
    elif kind == "extra_forbidden":
        message = "unknown key" + _did_you_mean(exc, first)
    elif kind == "missing":
        message = "required key is missing"
    elif len(errors) > 1 and all(_kind_refused(e) for e in errors) and len(set(paths)) == 1:
        # Every member of a union refused the value's kind: name them all, once.
        kinds = [_kind_wanted(e["msg"]) for e in errors]
        message = f"Input should be {' or '.join(dict.fromkeys(kinds))}"
        if not isinstance(first.get("input"), dict | list):
            message += f" (got {first['input']!r})"
        return path, message
    else:
        msg = _MODEL_INSTANCE.sub("a mapping", first["msg"])
        message = msg.removeprefix("Value error, ")
        if "input" in first and kind not in ("value_error",) and not isinstance(first["input"], dict | list):
            message += f" (got {first['input']!r})"
    more = len(errors) - 1
    if more:
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return path, message


def _same_branch(errors: list[Any], paths: list[str]) -> list[int]:
    """The errors to report: a union member that refused the value's kind outright (``search_strategy``
    is a bool or a mapping; a mapping fails the bool member with "a valid boolean") is left out when
    another member went inside the value or refused its content, so one wrong key reads as one problem,
    not two."""
    kept = []
    for i, error in enumerate(errors):
        other_kind = _kind_refused(error) and isinstance(error.get("input"), dict | list)
        took_it = [  # another member went inside the value, or took its kind and refused its content
            j
            for j, p in enumerate(paths)
            if j != i and (p.startswith(paths[i] + ".") or (p == paths[i] and not _kind_refused(errors[j])))
        ]
        if other_kind and took_it:
            continue
        kept.append(i)
    return kept or list(range(len(errors)))


def _kind_refused(error: Any) -> bool:
    return str(error["type"]).endswith(("_type", "_parsing"))


def _kind_wanted(msg: str) -> str:
    """``"Input should be a valid boolean, unable to interpret input"`` -> ``"a valid boolean"``."""
    wanted = msg.removeprefix("Input should be ").split(",")[0]
    return _MODEL_INSTANCE.sub("a mapping", wanted)


_MODEL_INSTANCE = re.compile(r"a valid dictionary or instance of \w+")


def error_path(loc: tuple[int | str, ...] | list[int | str]) -> str:
    """A pydantic error location as the config's dotted key path (``metrics.0.sub_types``).

    pydantic adds the member of a union it tried (``IOConfig``, ``str``, ``list[str]``) and validator
    wrappers (``function-after[...]``) to the location; those are not keys of the config file.
    """
    return ".".join(str(part) for part in loc if not _is_union_tag(part))


_INTERNAL = re.compile(
    r"^(function-(after|before|wrap|plain)\[.*|[A-Z]\w*Config|str|int|float|bool|none|"
    r"(list|dict|tuple|set|Annotated|union)\[.*|literal\[.*|tagged-union\[.*)$"
)


def _is_union_tag(part: object) -> bool:
    # pydantic puts the discriminator value of a tagged union into the location; drop it.
    return isinstance(part, str) and (part in _UNION_TAGS or bool(_INTERNAL.match(part)))


_UNION_TAGS = frozenset({"ONNXModel", "PyTorchModel", "HfModel", "LocalSystem", "LocalWorker", "PassEntry"})


def _did_you_mean(exc: ValidationError, error: Any) -> str:
    import difflib

    key = str(error["loc"][-1])
    known = _keys_at(RunConfig, list(error["loc"][:-1])) if exc.title == "RunConfig" else []
    match = difflib.get_close_matches(key, known, n=1)
    if match:
        return f"; did you mean '{match[0]}'?"
    return f"; allowed: {', '.join(known)}" if known else ""


def _keys_at(annotation: Any, loc: list[Any]) -> list[str]:
    """Allowed keys of the model found by following ``loc`` through ``annotation`` (best effort)."""
    import typing

    from pydantic import BaseModel

    current = annotation
    parts = list(loc)
    for _ in range(100):
        while parts and isinstance(parts[0], str) and parts[0].startswith("function-"):
            parts.pop(0)
        origin = typing.get_origin(current)
        args = typing.get_args(current)
        if origin is typing.Annotated:
            current = args[0]
            continue
        if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
            members = [a for a in args if a is not type(None)]
            models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
            if parts and _is_union_tag(parts[0]):
                tag = parts.pop(0)
                current = next(
                    (
                        m
                        for m in models
                        if m.model_fields.get("type") and m.model_fields["type"].default == tag
                    ),
                    models[0] if models else None,
                )
                continue
            current = models[0] if models else (members[0] if members else None)
            continue
        if origin in (list, dict):
            if not parts:
                return []
            parts.pop(0)
            current = args[-1]
            continue
        if isinstance(current, type) and issubclass(current, BaseModel):
            if not parts:  # the keys a user may write (not Olivine's own excluded bookkeeping fields)
                return sorted(k for k, f in current.model_fields.items() if not f.exclude)
            field = current.model_fields.get(str(parts.pop(0)))
            if field is None:
                return []
            current = field.annotation
            continue
        return []
    return []


def validate_config(data: dict[str, Any], *, file: str | None = None) -> RunConfig:
    """Validate a mapping as a run config; errors name ``file`` and the key path."""
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        path, message = format_validation_error(exc)
        raise ConfigError(message, path=path, file=file) from None
    except ConfigError as exc:
        raise exc.with_file(file) if file else exc from None


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a run config file."""
    return validate_config(read_config_file(path), file=str(path))
