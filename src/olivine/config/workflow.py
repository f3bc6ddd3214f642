"""The top-level run config (Olive's format)."""

from __future__ import annotations

import logging
import re
from typing import Any

from pydantic import Field, field_validator, model_validator

from olivine.config.azureml import AzureMLClientConfig
from olivine.config.base import StrictModel
from olivine.config.data import DataConfig
from olivine.config.datastores import DatastoreConfig
from olivine.config.engine import ENGINE_KEYS, EngineConfig
from olivine.config.evaluators import EvaluatorConfig
from olivine.config.model import InputModelConfig, normalize_model
from olivine.config.passes import PassEntry
from olivine.config.resources import plain_paths
from olivine.config.systems import SYSTEM_TYPES, SystemConfig, normalize_system, olive_only_type
from olivine.config.typed import prefixed
from olivine.errors import ConfigError, NotSupportedError

logger = logging.getLogger(__name__)

_WORKFLOW_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: A workflow id becomes a folder name (and ``<id>/<timestamp>.json`` on datastores); far below NAME_MAX.
MAX_WORKFLOW_ID = 100


def _lift_inline_data_configs(out: dict[str, Any]) -> None:
    """A pass's ``data_config`` written inline (a mapping, as Olive takes it) joins ``data_configs`` under
    its own ``name`` (or ``<pass>_data_config``) and the pass names it. A name already used by another
    data config with other content is refused."""
    data = out.get("data_configs")
    if data is not None and not isinstance(data, list):
        return  # reported by the data_configs checks
    lifted: list[Any] = list(data or [])
    for pass_name, slot in out["passes"].items():
        entries = slot if isinstance(slot, list) else [slot]
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict):
                continue
            # Olive's parameters are flat in the entry or nested under its "config" (both forms lift).
            nested = entry.get("config")
            holder = nested if isinstance(nested, dict) and "data_config" in nested else entry
            if not isinstance(holder.get("data_config"), dict):
                continue
            inline = dict(holder["data_config"])
            name = inline.get("name") or f"{pass_name}_data_config"
            where = (
                f"passes.{pass_name}"
                + (f".{index}" if isinstance(slot, list) else "")
                + (".config" if holder is nested else "")
                + ".data_config"
            )
            if not isinstance(name, str):
                raise ConfigError("an inline data config's name must be a string", path=f"{where}.name")
            inline["name"] = name
            same = [d for d in lifted if isinstance(d, dict) and d.get("name") == name]
            if same and same[0] != inline:
                raise ConfigError(
                    f"the inline data config is named '{name}', which another data config with other "
                    "content already uses; rename one",
                    path=f"{where}.name",
                )
            if not same:
                lifted.append(inline)
            if holder is nested:
                entries[index] = {**entry, "config": {**nested, "data_config": name}}
            else:
                entries[index] = {**entry, "data_config": name}
        if isinstance(slot, list):
            out["passes"][pass_name] = entries
        else:
            out["passes"][pass_name] = entries[0]
    if lifted:
        out["data_configs"] = lifted


class RunConfig(StrictModel):
    workflow_id: str = "default_workflow"
    input_model: InputModelConfig
    systems: dict[str, SystemConfig] = {}
    data_configs: list[DataConfig] = []
    evaluators: dict[str, EvaluatorConfig] = {}
    passes: dict[str, PassEntry | list[PassEntry]] = {}
    engine: EngineConfig = EngineConfig()
    workflow_host: str | None = None
    azureml_client: AzureMLClientConfig | None = None
    datastores: dict[str, DatastoreConfig] = {}
    #: Systems of Olive types that Olivine does not run (name -> type), set aside from ``systems``: declared
    #: and unused they only draw a warning; a reference to one is refused. Filled from ``systems`` (pydantic
    #: re-runs this validator on assignment, so it cannot tell a user's key from its own and takes both).
    olive_only_systems: dict[str, str] = Field(default_factory=dict, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _normalize(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        out = plain_paths(value)
        if "builds" in out or "max_concurrent_builds" in out:
            key = "builds" if "builds" in out else "max_concurrent_builds"
            raise NotSupportedError(
                "Olive's multi-build configs (after Olive 0.13) are not supported by Olivine yet; write one "
                "run config per build",
                path=key,
            )
        if "metrics" in out:
            # Olive's whisper_eval_wer recipes: metrics listed once and named from evaluators.
            raise ConfigError(
                "a top-level list of metrics that evaluators name is not an Olive format (Olive 0.13 "
                "refuses it too: 'metrics' is not a workflow key and an evaluator's metrics are mappings); "
                "write each metric inside its evaluator's 'metrics'",
                path="metrics",
            )
        if isinstance(out.get("data_configs"), dict):
            raise ConfigError(
                "an old Olive format (a mapping name -> data config), removed in Olive 0.6; use a list of "
                "data configs, each with its 'name'",
                path="data_configs",
            )
        if isinstance(out.get("passes"), dict):
            _lift_inline_data_configs(out)
        if isinstance(out.get("systems"), dict):
            aside = {k: t for k, v in out["systems"].items() if (t := olive_only_type(v)) is not None}
            if aside:
                out["systems"] = {k: v for k, v in out["systems"].items() if k not in aside}
                out["olive_only_systems"] = aside
        flat = {k: out.pop(k) for k in list(out) if k in ENGINE_KEYS}
        if flat:
            engine = dict(out.get("engine") or {})
            for key, val in flat.items():
                if key in engine:
                    raise ValueError(f"engine key '{key}' is given both at the top level and under 'engine'")
                engine[key] = val
            out["engine"] = engine
        if "input_model" in out:
            out["input_model"] = prefixed("input_model", normalize_model, out["input_model"])
        if isinstance(out.get("systems"), dict):
            out["systems"] = {
                k: prefixed(f"systems.{k}", normalize_system, v) for k, v in out["systems"].items()
            }
        return out

    @model_validator(mode="after")
    def _workspace_to_systems(self) -> RunConfig:
        """Olive's top-level ``azureml_client`` is the workspace of every AzureML system without one."""
        if self.azureml_client is not None:
            systems = {k: v.with_azureml_client(self.azureml_client) for k, v in self.systems.items()}
            if systems != self.systems:
                object.__setattr__(self, "systems", systems)
        return self

    @model_validator(mode="after")
    def _olive_only_references(self) -> RunConfig:
        refs = {"workflow_host": self.workflow_host, "engine.host": self.engine.host}
        refs["engine.target"] = self.engine.target
        for path, ref in refs.items():
            if isinstance(ref, str) and ref in self.olive_only_systems:
                raise ConfigError(
                    f"system '{ref}' (type {self.olive_only_systems[ref]}) is valid in Olive, not "
                    f"supported by Olivine yet (supported: {', '.join(sorted(SYSTEM_TYPES.values()))})",
                    path=path,
                )
        return self

    @model_validator(mode="after")
    def _pass_overrides(self) -> RunConfig:
        """Olive 0.13's per-pass ``host`` and ``evaluator`` (``RunPassConfig``), as its engine uses them.

        Olive evaluates a flow's output with the evaluator of its last pass (``evaluator_for_pass``), else the
        engine's: the last pass's evaluator becomes the engine's; one on another pass is never used by Olive
        and draws a warning. A per-pass host that is a LocalSystem runs the pass where the workflow runs
        (Olivine runs every pass there); any other host is refused.
        """
        if not self.passes:
            return self
        for name, slot in self.passes.items():
            if isinstance(slot, list) and not slot:
                raise ConfigError(
                    "an empty list of alternative passes; give one pass config, or a list of several",
                    path=f"passes.{name}",
                )
            for i, entry in enumerate(slot if isinstance(slot, list) else [slot]):
                path = f"passes.{name}" + (f".{i}" if isinstance(slot, list) else "")
                self._check_pass_host(entry.host, f"{path}.host")
                if isinstance(entry.evaluator, str) and entry.evaluator not in self.evaluators:
                    raise ConfigError(
                        f"evaluator '{entry.evaluator}' is not in 'evaluators' "
                        f"(defined: {', '.join(sorted(self.evaluators)) or 'none'})",
                        path=f"{path}.evaluator",
                    )
        *middle, last = self.passes.items()
        for name, slot in middle:
            if any(e.evaluator is not None for e in (slot if isinstance(slot, list) else [slot])):
                logger.warning(
                    "passes.%s.evaluator ignored, as Olive 0.13 ignores it: a flow's output is evaluated "
                    "with its last pass's evaluator, else the engine's",
                    name,
                )
        last_name, last_slot = last
        chosen = {repr(e.evaluator) for e in (last_slot if isinstance(last_slot, list) else [last_slot])}
        if len(chosen) > 1:
            raise NotSupportedError(
                "alternatives of the last pass with different evaluators are not supported by Olivine; give "
                "them one evaluator (or set engine.evaluator)",
                path=f"passes.{last_name}.evaluator",
            )
        entries = last_slot if isinstance(last_slot, list) else [last_slot]
        if entries[0].evaluator is not None:
            engine = self.engine.model_copy(update={"evaluator": entries[0].evaluator})
            object.__setattr__(self, "engine", engine)
        # Given their meaning once: a serialized workflow (a remote job's) reads the same.
        cleared = {
            name: [e.model_copy(update={"evaluator": None}) for e in slot]
            if isinstance(slot, list)
            else slot.model_copy(update={"evaluator": None})
            for name, slot in self.passes.items()
        }
        object.__setattr__(self, "passes", cleared)
        return self

    @model_validator(mode="after")
    def _baseline_for_relative_goals(self) -> RunConfig:
        """Olive 0.13 resolves the goals before any pass runs (``resolve_goals``, with or without search) and
        evaluates the input model for a relative goal whatever ``evaluate_input_model`` says; so does
        Olivine, saying so."""
        if self.engine.evaluate_input_model:
            return self
        ref = self.engine.evaluator
        evaluator = self.evaluators.get(ref) if isinstance(ref, str) else ref
        if evaluator is None:
            return self
        relative = [
            f"{metric.name}-{sub.name}"
            for metric in evaluator.metrics
            for sub in metric.sub_types
            if sub.goal is not None and sub.goal.type != "threshold"
        ]
        if relative:
            logger.warning(
                "engine.evaluate_input_model is false, but the goal of %s is relative to the input model: "
                "the input model is evaluated as its baseline, as Olive 0.13 does",
                ", ".join(relative),
            )
            engine = self.engine.model_copy(update={"evaluate_input_model": True})
            object.__setattr__(self, "engine", engine)
        return self

    def _check_pass_host(self, host: Any, path: str) -> None:
        if host is None:
            return
        if isinstance(host, str):
            if host in self.olive_only_systems:
                kind = self.olive_only_systems[host]
            elif host not in self.systems:
                defined = ", ".join(sorted(self.systems)) or "none"
                raise ConfigError(f"system '{host}' is not in 'systems' (defined: {defined})", path=path)
            else:
                kind = self.systems[host].system_type()
        else:
            kind = host.system_type()
        if kind != "LocalSystem":
            raise NotSupportedError(
                f"a per-pass host of type {kind} is not supported by Olivine: every pass runs on the "
                "workflow's host; use a LocalSystem or drop the key",
                path=path,
            )

    @field_validator("workflow_id")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        if not _WORKFLOW_ID.match(value):
            raise ValueError(
                f"workflow_id '{value}' may contain letters, digits, '_', '.', '-' and must start with a "
                "letter or digit (it becomes a folder and a data asset name)"
            )
        if len(value) > MAX_WORKFLOW_ID:
            raise ValueError(
                f"workflow_id is {len(value)} characters long; at most {MAX_WORKFLOW_ID} are allowed "
                "(it becomes a folder and a data asset name)"
            )
        return value

    @field_validator("data_configs")
    @classmethod
    def _unique_data(cls, value: list[DataConfig]) -> list[DataConfig]:
        names = [d.name for d in value]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"data config names must be unique; repeated: {', '.join(dup)}")
        return value

    def data_config(self, name: str) -> DataConfig | None:
        return next((d for d in self.data_configs if d.name == name), None)
