"""A static check of a user script, for validation and ``--dry-run``: it parses, and the packages it imports
unconditionally at its top level are installed.

A model script is imported only when a pass loads the model, which may be minutes into a run (and on
another host); its most common failure, a package that is not installed, is found here without running
any of its code. Imports inside ``try``, ``if`` or functions are optional or lazy and are not checked.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

#: Top-level modules that Olivine provides itself when a script is imported (the ``olive`` stand-in).
PROVIDED = frozenset({"olive"})


def script_problem(script: Path, folders: list[Path]) -> str | None:
    """Why ``script`` cannot be imported here, or None.

    Args:
        script: the script file.
        folders: folders the script's own modules are found in (its folder, ``script_dir``).
    """
    try:
        tree = ast.parse(script.read_bytes(), filename=str(script))
    except SyntaxError as exc:
        return f"{script} has a syntax error at line {exc.lineno}: {exc.msg}"
    except (OSError, ValueError) as exc:
        return f"cannot read {script}: {exc}"
    for name in _top_level_imports(tree):
        if name in PROVIDED or _local(name, folders):
            continue
        try:
            found = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            found = None
        if found is None:
            return f"{script} imports '{name}', which is not installed here (install it in this environment)"
    return None


def _top_level_imports(tree: ast.Module) -> list[str]:
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names += [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module.split(".")[0])
    return list(dict.fromkeys(names))


def _local(name: str, folders: list[Path]) -> bool:
    return any((f / f"{name}.py").is_file() or (f / name).is_dir() for f in folders)
