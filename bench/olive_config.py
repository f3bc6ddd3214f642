"""Generate Olive's equivalent of an Olivine run config (same model, data, metrics, passes, engine).

Usage: ``python bench/olive_config.py CONFIG.json --work DIR [--out FILE]``

Olivine reads Olive's format, so the translation is small:

- relative paths become absolute (Olive resolves them against the current directory, not the config);
- systems Olive does not know (``LocalWorker``) and Olivine-only keys (``workflow_host``, ``datastores``)
  are dropped; a host/target naming a dropped system falls back to Olive's default (local);
- a custom metric's ``evaluate_func`` is routed through ``bench/olive_adapter.py``, which turns Olive's
  model handler into an Olivine model handle and calls the very same user_script function (with the
  ``data_dir`` and ``input_model`` Olivine would offer it);
- ``cache_dir`` and ``output_dir`` move into the benchmark's work folder.

Pure (no Olive, no Olivine import): unit-tested in ``tests/unit/test_bench_olive_config.py``.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ADAPTER = BENCH / "olive_adapter.py"
OLIVINE_SRC = BENCH.parent / "src"

#: System types Olive 0.13 accepts.
OLIVE_SYSTEM_TYPES = frozenset({"LocalSystem", "PythonEnvironment", "Docker", "AzureML", "IsolatedORT"})
#: Keys only Olivine understands, dropped from the top level and from ``engine``.
OLIVINE_ONLY_KEYS = ("workflow_host", "datastores", "evaluate_intermediate_models")
_PATH_KEYS = ("model_path", "model_script", "script_dir", "adapter_path", "user_script")
ADAPTER_FUNC = "evaluate"


def _absolute(value: Any, base: Path) -> Any:
    if isinstance(value, str) and value and not Path(value).is_absolute() and "://" not in value:
        return str((base / value).resolve())
    return value


def _absolute_paths(section: dict[str, Any], base: Path) -> None:
    for key in _PATH_KEYS:
        if key in section:
            section[key] = _absolute(section[key], base)


def _nested(model: dict[str, Any]) -> dict[str, Any]:
    """A model config in the nested form ``{"type": ..., "config": {...}}`` (Olive accepts both)."""
    if "config" in model:
        return copy.deepcopy(model)
    return {"type": model.get("type"), "config": {k: v for k, v in model.items() if k != "type"}}


def _adapt_custom_metric(
    metric: dict[str, Any], input_model: dict[str, Any], base: Path, adapter: Path, olivine_src: Path
) -> None:
    user = dict(metric.get("user_config") or {})
    func = user.get("evaluate_func")
    if not isinstance(func, str):
        raise ValueError(
            f"custom metric '{metric.get('name')}': only a named evaluate_func can be adapted for Olive"
        )
    script_base = Path(_absolute(user["script_dir"], base)) if user.get("script_dir") else base
    script = _absolute(user.get("user_script"), script_base)
    # Olivine offers data_dir and input_model to functions that name them; Olive knows neither, so the
    # adapter carries them.
    context = {"data_dir": _absolute(user.pop("data_dir", None), base), "input_model": _nested(input_model)}
    kwargs = dict(user.get("evaluate_func_kwargs") or {})
    user.pop("script_dir", None)
    user.update(
        user_script=str(adapter),
        evaluate_func=ADAPTER_FUNC,
        evaluate_func_kwargs={
            "olivine_src": str(olivine_src),
            "olivine_user_script": script,
            "olivine_func": func,
            "olivine_context": {k: v for k, v in context.items() if v is not None},
            **kwargs,
        },
    )
    metric["user_config"] = user


def olive_config(
    config: dict[str, Any],
    *,
    config_dir: Path,
    work_dir: Path,
    adapter: Path = ADAPTER,
    olivine_src: Path = OLIVINE_SRC,
) -> dict[str, Any]:
    """Olive's equivalent of the Olivine run config ``config`` (read from ``config_dir``).

    Args:
        config: the Olivine run config as loaded from JSON.
        config_dir: the folder the config's relative paths are relative to.
        work_dir: where Olive's cache (``.olive-cache``) and outputs (``olive-output``) go.
        adapter: the Olive user_script that wraps Olivine user_script functions.
        olivine_src: the folder ``olivine`` is imported from inside Olive's venv.

    Raises:
        ValueError: a custom metric uses something the adapter cannot express.
    """
    out = copy.deepcopy(config)
    base = config_dir.resolve()
    for key in OLIVINE_ONLY_KEYS:
        out.pop(key, None)
    model_cfg = out.get("input_model") or {}
    _absolute_paths(model_cfg, base)
    _absolute_paths(model_cfg.get("config") or {}, base)
    systems = {
        name: system
        for name, system in (out.get("systems") or {}).items()
        if system.get("type") in OLIVE_SYSTEM_TYPES
    }
    if "systems" in out:
        out["systems"] = systems
    for data_config in out.get("data_configs") or []:
        _absolute_paths(data_config, base)
    for evaluator in (out.get("evaluators") or {}).values():
        for metric in evaluator.get("metrics") or []:
            if metric.get("type") == "custom":
                _adapt_custom_metric(metric, model_cfg, base, adapter, olivine_src)
    engine = out.setdefault("engine", {})
    for key in OLIVINE_ONLY_KEYS:
        engine.pop(key, None)
    for role in ("host", "target"):
        if isinstance(engine.get(role), str) and engine[role] not in systems:
            engine.pop(role)
    engine["cache_dir"] = str(work_dir.resolve() / ".olive-cache")
    engine["output_dir"] = str(work_dir.resolve() / "olive-output")
    return out


def write_olive_config(olivine_config: Path, work_dir: Path, out: Path | None = None) -> Path:
    """Translate ``olivine_config`` and write it as JSON (default ``<work_dir>/olive_config.json``)."""
    data = json.loads(olivine_config.read_text(encoding="utf-8"))
    translated = olive_config(data, config_dir=olivine_config.parent, work_dir=work_dir)
    target = out or work_dir / "olive_config.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(translated, indent=2) + "\n", encoding="utf-8")
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("config", type=Path, help="Olivine run config (JSON)")
    parser.add_argument("--work", type=Path, required=True, help="folder for Olive's cache and outputs")
    parser.add_argument("--out", type=Path, help="where to write (default: WORK/olive_config.json)")
    args = parser.parse_args()
    print(write_olive_config(args.config, args.work, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
