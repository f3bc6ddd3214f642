"""Cache keys: full-length sha256 of canonical JSON (sorted keys, no whitespace)."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def hash_json(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def hash_tree(path: Path) -> str:
    """Content hash of a file, or of a folder (relative names + file hashes)."""
    if path.is_file():
        return hash_file(path)
    entries = [(str(p.relative_to(path)), hash_file(p)) for p in sorted(path.rglob("*")) if p.is_file()]
    return hash_json(entries)


@cache
def library_version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not-installed"


def library_versions(distributions: tuple[str, ...]) -> dict[str, str]:
    return {name: library_version(name) for name in sorted(set(distributions))}


def run_key(
    *,
    input_model_id: str,
    pass_type: str,
    pass_version: str,
    pass_config: dict[str, Any],
    accelerator: dict[str, Any],
    versions: dict[str, str],
) -> str:
    """The key of one pass run: everything that determines its artifact."""
    return hash_json(
        {
            "input_model_id": input_model_id,
            "pass_type": pass_type,
            "pass_version": pass_version,
            "pass_config": pass_config,
            "accelerator": accelerator,
            "versions": versions,
        }
    )
