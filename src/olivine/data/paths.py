"""The local files a data config reads: listing them (for the remote bundler), rewriting them, and a
content fingerprint (for evaluation cache keys).

Local paths are ``user_script``, ``script_dir``, and in any component's ``params``: ``user_script``,
``script_dir``, ``data_dir``, ``data_files`` (a path, a list, or a mapping of split / array name ->
path(s)), and ``model_name`` / ``model_config_path`` when they name an existing local folder (a
tokenizer), and ``data_name`` when it names an existing local dataset folder. ``data_files`` of
``huggingface_dataset`` are relative to its ``data_dir`` when both are given; they are listed joined. When
its ``data_name`` is a Hub dataset or a local dataset folder, ``data_dir`` and ``data_files`` are paths
inside that dataset, not local paths.
Key paths are relative to the data config, e.g. ``load_dataset_config.params.data_files.1``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from olivine.config.data import DataConfig
from olivine.data.hub import PACKAGED_BUILDERS
from olivine.data.user_script import file_sha256, resolve_path

_FILE_KEYS = ("data_dir", "data_files")
_FOLDER_IF_EXISTS = ("model_name", "model_config_path")
_COMPONENT_FIELDS = (
    "load_dataset_config",
    "pre_process_data_config",
    "post_process_data_config",
    "dataloader_config",
)

# (key path, the mapping or list holding the value, the key or index in it, path value as listed)
_Slot = tuple[str, Any, Any, str]


def _slots(data: dict[str, Any], base_dir: Path | None) -> Iterator[_Slot]:
    """Walk a dumped data config and yield every local-path slot."""
    for key in ("user_script", "script_dir"):
        if isinstance(data.get(key), str):
            yield key, data, key, data[key]
    for field in _COMPONENT_FIELDS:
        component = data.get(field)
        if not component:
            continue
        params = component.get("params") or {}
        prefix = f"{field}.params"
        data_dir = params.get("data_dir") if isinstance(params.get("data_dir"), str) else None
        name = params.get("data_name")
        # huggingface_dataset of a Hub dataset or a local dataset folder: data_dir / data_files are inside it.
        in_dataset = isinstance(name, str) and name.lower() not in PACKAGED_BUILDERS
        for key in () if in_dataset else _FILE_KEYS:
            value = params.get(key)
            under = data_dir if key == "data_files" else None
            yield from _value_slots(f"{prefix}.{key}", params, key, value, under)
        for key in _FOLDER_IF_EXISTS:
            value = params.get(key)
            if isinstance(value, str) and _is_local(value, base_dir):
                yield f"{prefix}.{key}", params, key, value
        # huggingface_dataset's data_name may be a local dataset folder (datasets loads it like a Hub one).
        if in_dataset and isinstance(name, str) and _is_local(name, base_dir):
            yield f"{prefix}.data_name", params, "data_name", name
        # A component's own script (Olive's TextGenParams: the text_formatting_func's user_script).
        for key in ("user_script", "script_dir"):
            if isinstance(params.get(key), str):
                yield f"{prefix}.{key}", params, key, params[key]


def _value_slots(path: str, holder: Any, key: Any, value: Any, under: str | None) -> Iterator[_Slot]:
    if isinstance(value, str):
        shown = value if under is None or os.path.isabs(value) else os.path.join(under, value)
        yield path, holder, key, shown
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _value_slots(f"{path}.{i}", value, i, item, under)
    elif isinstance(value, dict):
        for name, item in value.items():
            yield from _value_slots(f"{path}.{name}", value, name, item, under)


def _is_local(value: str, base_dir: Path | None) -> bool:
    path = Path(value).expanduser()
    if path.is_absolute():
        return path.exists()
    return base_dir is not None and (base_dir / path).exists()


def local_paths(dc: DataConfig, *, base_dir: Path | None = None) -> list[tuple[str, str]]:
    """``(key path, path value)`` of every local file or folder ``dc`` reads.

    Args:
        dc: the data config.
        base_dir: the config file's folder; needed to recognise a relative ``model_name`` as local.
    """
    return [(key, shown) for key, _, _, shown in _slots(dc.model_dump(), base_dir)]


def rewrite_paths(dc: DataConfig, mapping: dict[str, str], *, base_dir: Path | None = None) -> DataConfig:
    """A copy of ``dc`` with local paths replaced.

    Args:
        dc: the data config.
        mapping: old -> new path. A key may be a key path as :func:`local_paths` lists it (that one slot
            changes) or a path value as it lists it (every slot listing that value changes); a key path
            wins. Keys matching nothing are ignored, so one mapping can serve a whole workflow.
        base_dir: as for :func:`local_paths`.
    """
    data = dc.model_dump()
    for key, holder, slot, shown in list(_slots(data, base_dir)):
        new = mapping.get(key, mapping.get(shown))
        if new is not None:
            holder[slot] = new
    return DataConfig.model_validate(data)


def content_fingerprint(dc: DataConfig, *, base_dir: Path | None = None) -> str:
    """sha256 over the canonical config with each local path replaced by the hash of its content.

    Moving or renaming files (as the remote bundler does) keeps the fingerprint; editing a byte changes it.
    """
    data = dc.model_dump()
    for key, holder, slot, shown in list(_slots(data, base_dir)):
        holder[slot] = content_hash(resolve_path(shown, base_dir), code_only=key.endswith("script_dir"))
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def content_hash(path: Path, *, code_only: bool = False) -> str:
    """``file:<sha256>`` of a file, ``dir:<sha256>`` over a folder's files (names and contents), or
    ``missing:<path>``. ``code_only`` hashes only the ``.py`` files of a folder (a ``script_dir`` may be a
    whole project folder; only its modules can change what a script does)."""
    if path.is_file():
        return "file:" + file_sha256(path)
    if path.is_dir():
        digest = hashlib.sha256()
        pattern = "*.py" if code_only else "*"
        for file in sorted(p for p in path.rglob(pattern) if p.is_file() and "__pycache__" not in p.parts):
            digest.update(file.relative_to(path).as_posix().encode("utf-8") + b"\0")
            digest.update(file_sha256(file).encode("ascii"))
        return "dir:" + digest.hexdigest()
    return f"missing:{path}"


def absolute_params(params: dict[str, Any], base_dir: Path | None) -> dict[str, Any]:
    """``params`` with its local paths (as listed above) made absolute, for user components: they are
    relative to the config file's folder, not to the working directory."""
    if base_dir is None:
        return dict(params)
    out = dict(params)
    data_dir = out.get("data_dir")
    for key in _FILE_KEYS:
        # data_files under a data_dir stay relative to it (the component joins them, as datasets does).
        if key == "data_files" and isinstance(data_dir, str):
            continue
        out[key] = _absolute(out.get(key), base_dir)
    for key in _FOLDER_IF_EXISTS:
        value = out.get(key)
        if isinstance(value, str) and _is_local(value, base_dir):
            out[key] = str(resolve_path(value, base_dir))
    return {k: v for k, v in out.items() if k in params}


def _absolute(value: Any, base_dir: Path) -> Any:
    if isinstance(value, str):
        return str(resolve_path(value, base_dir))
    if isinstance(value, list):
        return [_absolute(v, base_dir) for v in value]
    if isinstance(value, dict):
        return {k: _absolute(v, base_dir) for k, v in value.items()}
    return value
