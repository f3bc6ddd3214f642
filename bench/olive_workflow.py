"""Run an Olive workflow with the run-time patches Olive 0.13.0 needs for custom metrics (Olive's venv).

Usage: ``bench/.olive-venv/bin/python bench/olive_workflow.py OLIVE_CONFIG.json [--summary FILE]``

This is ``olive run --config OLIVE_CONFIG.json`` (it calls ``olive.workflows.run`` as that command does)
with the patches of :data:`PATCHES` applied first. Each patch is applied only when a probe shows the bug
is present, so a fixed Olive runs unpatched; the summary JSON says which were needed. Set ``CI=1`` in
the environment to switch Olive's telemetry off (``run_all.py`` does).

The bugs (olive-ai 0.13.0, pydantic 2.13; found by reading ``olive/evaluator/metric.py``,
``olive/workflows/run/config.py`` and ``olive/cache.py``):

1. ``Metric.serialize_backend`` calls ``backend.model_dump()``, but a custom metric's backend is
   ``None``: ``run_config.to_json()`` in ``run_engine`` raises, so no workflow with a custom metric runs.
2. ``SubMetric.serialize_metric_config`` likewise calls ``None.model_dump()`` for custom sub-types.
3. ``Metric.user_config`` is annotated ``ConfigBase`` (no fields); pydantic 2 serializes by annotation,
   so every ``model_dump`` of an evaluator drops ``user_script``/``evaluate_func``.
   ``RunEngineConfig.create_engine`` and ``OliveCache.prepare_resources_for_local`` both round-trip the
   evaluator through ``model_dump``, and evaluation then fails with "evaluate_func or metric_func is
   not specified in the metric config".
4. ``FootprintNode.update`` sets ``model_config``, the alias of ``model_config_data``; pydantic 2.13 refuses
   an alias in ``setattr``, so in a search every point after the first (whose shared passes are cache
   hits) fails with ``"FootprintNode" object has no field "model_config"``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ADAPTER = Path(__file__).resolve().parent / "olive_adapter.py"


@dataclass(frozen=True)
class Patch:
    name: str
    why: str
    needed: Callable[[], bool]
    apply: Callable[[], None]


def _probe_metric() -> Any:
    from olive.evaluator.metric import Metric

    return Metric(
        name="probe",
        type="custom",
        sub_types=[{"name": "value", "priority": 1, "higher_is_better": True}],
        user_config={"user_script": str(ADAPTER), "evaluate_func": "evaluate"},
    )


def _dump_fails() -> bool:
    try:
        _probe_metric().model_dump()
    except Exception:
        return True
    return False


def _backend_dump_fails() -> bool:
    from olive.evaluator.metric import Metric

    try:
        Metric.model_validate({"name": "probe", "type": "custom"}).model_dump(include={"backend"})
    except Exception:
        return True
    return False


def _patch_backend_serializer() -> None:
    from olive.evaluator.metric import Metric

    def serialize_backend(self: Any, backend: Any) -> Any:
        return backend if backend is None or isinstance(backend, str) else backend.model_dump()

    # pydantic compiled the original function into the schema: change the function object itself.
    Metric.serialize_backend.__code__ = serialize_backend.__code__


def _patch_metric_config_serializer() -> None:
    from olive.evaluator.metric import SubMetric

    def serialize_metric_config(self: Any, metric_config: Any) -> Any:
        return None if metric_config is None else metric_config.model_dump()

    SubMetric.serialize_metric_config.__code__ = serialize_metric_config.__code__


def _user_config_lost() -> bool:
    import olive.cache

    # The name the engine's cache calls (patched there, not in config_utils).
    dumped = olive.cache.convert_configs_to_dicts(_probe_metric())
    return "evaluate_func" not in (dumped.get("user_config") or {})


def _patch_user_config_round_trips() -> None:
    import olive.cache
    from olive.common.config_utils import ConfigBase
    from olive.workflows.run.config import RunEngineConfig
    from pydantic import RootModel

    def convert_configs_to_dicts(config: Any) -> Any:
        if isinstance(config, (ConfigBase, RootModel)):
            return config.model_dump(serialize_as_any=True)
        if isinstance(config, dict):
            return {k: convert_configs_to_dicts(v) for k, v in config.items()}
        if isinstance(config, list):
            return [convert_configs_to_dicts(v) for v in config]
        return config

    olive.cache.convert_configs_to_dicts = convert_configs_to_dicts
    original = RunEngineConfig.create_engine

    def create_engine(self: Any, olive_config: Any, workflow_id: str) -> Any:
        engine = original(self, olive_config, workflow_id)
        if self.evaluator is not None:
            engine.evaluator_config = self.evaluator  # the validated object, not its lossy dump
        return engine

    RunEngineConfig.create_engine = create_engine


def _footprint_update_fails() -> bool:
    from olive.engine.footprint import FootprintNode

    try:
        FootprintNode(model_id="probe").update(model_config={})
    except Exception:
        return True
    return False


def _patch_footprint_update() -> None:
    from olive.engine.footprint import FootprintNode

    def update(self: Any, **kwargs: Any) -> None:
        for key, value in kwargs.items():
            # ``model_config`` is the alias of the field ``model_config_data``; pydantic 2.13 sets fields only
            setattr(self, "model_config_data" if key == "model_config" else key, value)

    FootprintNode.update = update


PATCHES = (
    Patch(
        "custom metric backend serializer",
        "Metric.serialize_backend calls None.model_dump() for custom metrics: run_config.to_json() fails",
        _backend_dump_fails,
        _patch_backend_serializer,
    ),
    Patch(
        "custom sub-metric config serializer",
        "SubMetric.serialize_metric_config calls None.model_dump() for custom sub-types",
        _dump_fails,
        _patch_metric_config_serializer,
    ),
    Patch(
        "evaluator user_config lost in model_dump",
        "Metric.user_config is annotated ConfigBase, so create_engine and prepare_resources_for_local "
        "drop evaluate_func/user_script ('evaluate_func or metric_func is not specified')",
        _user_config_lost,
        _patch_user_config_round_trips,
    ),
    Patch(
        "footprint node update by alias",
        "FootprintNode.update sets 'model_config', the alias of model_config_data, which pydantic 2.13 "
        "refuses: in a search every point after the first (a cache hit on the shared passes) fails",
        _footprint_update_fails,
        _patch_footprint_update,
    ),
)


def apply_patches() -> list[dict[str, Any]]:
    """Apply each patch whose bug is present; return ``[{name, why, needed}]`` in order."""
    applied = []
    for patch in PATCHES:
        needed = patch.needed()
        if needed:
            patch.apply()
            if patch.needed():
                raise RuntimeError(f"patch '{patch.name}' did not fix what its probe checks")
        applied.append({"name": patch.name, "why": patch.why, "needed": needed})
    return applied


def main() -> int:
    start = time.perf_counter()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("config", type=Path, help="Olive run config (see olive_config.py)")
    parser.add_argument("--summary", type=Path, help="write patches applied and the output metrics here")
    args = parser.parse_args()

    import olive
    from olive.workflows import run as olive_run

    patches = apply_patches()
    for item in patches:
        print(f"olive_workflow: patch {item['name']}: {'applied' if item['needed'] else 'not needed'}")
    olive_run(str(args.config))
    config = json.loads(args.config.read_text(encoding="utf-8"))
    out_dir = Path(config["engine"]["output_dir"])
    metrics = out_dir / "metrics.json"
    if args.summary:
        summary = {
            "olive_version": getattr(olive, "__version__", None),
            "patches": patches,
            "output_dir": str(out_dir),
            "metrics": json.loads(metrics.read_text(encoding="utf-8")) if metrics.is_file() else None,
            "inside_s": round(time.perf_counter() - start, 3),
        }
        args.summary.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if not (out_dir / "model_config.json").is_file():
        # Olive logs "Failed to run Olive on <accelerator>" and still returns normally.
        print(f"olive_workflow: no output model in {out_dir}: the workflow failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
