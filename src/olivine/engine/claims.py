"""Check what an output folder claims before anyone reports success.

A workflow's output says "the best model is here": ``model_config.json`` names the model, ``model/``
holds its files, and ``.olivine-digests.json`` recorded their sha256 when they were copied. Between the
copy and the report the files can vanish or change (another run with ``clean_cache`` on the same
``cache_dir``, a user deleting a folder, a full disk). :func:`output_problems` says what does not hold;
hosts mark a job SUCCEEDED only when it returns nothing, and only after the export checked out too.
"""

from __future__ import annotations

import json
from pathlib import Path

from olivine.digests import hash_recorded, read_digests
from olivine.model.handle import ModelHandle


def output_problems(out_dir: Path) -> list[str]:
    """What is wrong with the output folder ``out_dir``; an empty list means its claims hold.

    Checked: the footprint names a best model exactly when ``model_config.json`` exists; that config
    is readable and its model path lies inside ``out_dir`` and holds at least one file; every file the
    digests sidecar recorded still exists with the recorded size and sha256.
    """
    problems: list[str] = []
    config_path = out_dir / "model_config.json"
    best_claimed = _best_claimed(out_dir)
    if not config_path.is_file():
        if best_claimed:
            problems.append("the footprint names a best model but model_config.json is missing")
        return problems
    try:
        model = ModelHandle.from_json(
            json.loads(config_path.read_text(encoding="utf-8")), relative_to=out_dir
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [f"model_config.json is unreadable: {type(exc).__name__}: {exc}"]
    if model.model_path is None:
        return [*problems, "model_config.json names no model_path"]
    path = Path(model.model_path)
    if not path.resolve().is_relative_to(out_dir.resolve()):
        problems.append("model_config.json's model_path lies outside the output folder")
    elif not model.files():
        problems.append(f"the best model's folder {path} holds no files")
    for rel, record in read_digests(out_dir).items():
        file = out_dir / rel
        if not file.is_file():
            problems.append(f"{rel}: missing")
        elif record.sha256_if_unchanged(file) is None and hash_recorded(file).sha256 != record.sha256:
            problems.append(f"{rel}: content differs from what was written")
    return problems


def _best_claimed(out_dir: Path) -> bool:
    try:
        footprint = json.loads((out_dir / "footprint.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(footprint, dict):
        return False
    return footprint.get("best_model_id") is not None or footprint.get("best") is not None
