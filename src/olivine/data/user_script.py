"""Import user scripts (``user_script`` / ``script_dir``) by path: one loader for data configs, metrics and
models.

A script is imported under a module name derived from its content hash, so loading the same file twice
returns the same module (its registrations run once), and an edited file is imported afresh. ``script_dir``
is added to ``sys.path`` so the script can import modules from it.

Olive's user scripts import ``from olive.data.registry import Registry``. When Olive itself is not installed,
that import is served by :mod:`olivine.data.registry`, so an Olive user script runs unchanged.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import threading
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from olivine import olive_standin
from olivine.errors import ConfigError, UserScriptError

# Re-entrant: a user script may itself load another user script while being imported.
_LOCK = threading.RLock()
_MODULES: dict[tuple[str, str], types.ModuleType] = {}
_CHUNK = 1 << 20


def file_sha256(path: str | Path) -> str:
    """Full sha256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_path(path: str | Path, base_dir: Path | None) -> Path:
    """``path`` made absolute: relative paths are relative to ``base_dir`` (the config file's folder)."""
    p = Path(path).expanduser()
    if not p.is_absolute() and base_dir is not None:
        p = base_dir / p
    return p.resolve()


def load_user_script(
    path: str | Path, script_dir: str | Path | None = None, *, base_dir: Path | None = None
) -> types.ModuleType:
    """Import the Python file at ``path`` and return the module (cached by content hash).

    Args:
        path: the script; relative paths are resolved against ``base_dir``, then the working directory.
        script_dir: a folder put on ``sys.path`` before the import (Olive's ``script_dir``).
        base_dir: the folder relative paths are relative to.

    Raises:
        ConfigError: the script or the folder does not exist.
        UserScriptError: importing the script raised (its code, or a package it imports is missing).
    """
    script = resolve_path(path, base_dir)
    if not script.is_file():
        raise ConfigError(f"user script not found: {script}", path="user_script")
    folder = resolve_path(script_dir, base_dir) if script_dir else None
    if folder is not None and not folder.is_dir():
        raise ConfigError(f"script_dir is not a folder: {folder}", path="script_dir")
    sha = file_sha256(script)
    key = (sha, str(folder or ""))
    with _LOCK:
        cached = _MODULES.get(key)
        if cached is not None:
            return cached
        olive_standin.install()
        # Appended, as Olive does, so a script's neighbour module never shadows an installed package.
        if folder is not None and str(folder) not in sys.path:
            sys.path.append(str(folder))
        name = f"olivine_user_script_{sha}"
        spec = importlib.util.spec_from_file_location(name, script)
        if spec is None or spec.loader is None:
            raise ConfigError(f"cannot import {script} as a Python module", path="user_script")
        module = importlib.util.module_from_spec(spec)
        # Registered before exec so decorators and dataclasses inside the script can find their module.
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # user code: any exception type
            del sys.modules[name]
            raise UserScriptError(
                f"importing user script {script} failed: {type(exc).__name__}: {exc}", path="user_script"
            ) from exc
        _MODULES[key] = module
        return module


def load_object(
    name: str, user_script: str | Path | None, script_dir: str | Path | None, *, base_dir: Path | None = None
) -> Callable[..., Any]:
    """The callable ``name`` defined in ``user_script``.

    Raises:
        ConfigError: there is no user script, or it defines no callable of that name.
    """
    if not user_script:
        raise ConfigError(f"'{name}' needs a 'user_script' that defines it", path="user_script")
    module = load_user_script(user_script, script_dir, base_dir=base_dir)
    obj = getattr(module, name, None)
    if not callable(obj):
        import difflib

        known = [k for k, v in vars(module).items() if callable(v) and not k.startswith("_")]
        match = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean '{match[0]}'?" if match else ""
        raise ConfigError(f"user script {user_script} defines no function '{name}'{hint}")
    return obj
