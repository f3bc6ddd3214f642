"""Resolve a validated run config into a workflow the engine can run.

One explicit step (not inside validators): relative paths become absolute and must exist, names (systems,
evaluators, data configs) resolve to their definitions, pass parameters are validated against each pass's
own config model, and data components against theirs. Every problem is a :class:`ConfigError` naming the
file and key path.
"""

from __future__ import annotations

import builtins
import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from olivine.config.data import DataConfig
from olivine.config.evaluators import EvaluatorConfig
from olivine.config.loader import format_validation_error, read_config_file, validate_config
from olivine.config.passes import DEFAULT_VALUE, SEARCHABLE_VALUES, PassEntry
from olivine.config.paths import iter_local_paths, name_allowed
from olivine.config.systems import LocalSystemConfig, SystemConfig
from olivine.config.workflow import RunConfig
from olivine.errors import ConfigError, NotSupportedError, ReferenceNotFoundError
from olivine.model.accelerator import Accelerator
from olivine.passes.base import PASSES, Pass, PassConfig


@dataclass(frozen=True)
class ResolvedPass:
    name: str  # the key in ``passes``
    type: str  # canonical pass type name
    cls: builtins.type[Pass]  # `type` is a field name here
    config: PassConfig

    def canonical_config(self) -> dict[str, Any]:
        return self.config.model_dump(mode="json")


@dataclass(frozen=True)
class ResolvedWorkflow:
    config: RunConfig
    config_path: Path | None
    base_dir: Path
    passes: tuple[ResolvedPass, ...]
    evaluator: EvaluatorConfig | None
    data_configs: dict[str, DataConfig]
    accelerator: Accelerator
    host: SystemConfig = field(default_factory=LocalSystemConfig)

    @property
    def workflow_id(self) -> str:
        return self.config.workflow_id

    def to_json(self) -> dict[str, Any]:
        """The resolved config as a plain Olive-format mapping with absolute paths."""
        return self.config.model_dump(mode="json", exclude_none=True)

    def local_files(self) -> list[tuple[str, Path]]:
        """(key path, absolute path) of every local file or folder the workflow reads."""
        found = [
            (key, Path(value))
            for key, owner, name, value in iter_local_paths(self.config)
            if not (name_allowed(owner, name) and not Path(value).is_absolute())
        ]
        for rpass in self.passes:
            found += [(f"passes.{rpass.name}.{k}", Path(v)) for k, _, _, v in iter_local_paths(rpass.config)]
        from olivine.data import local_paths

        for index, dc in enumerate(self.config.data_configs):
            for key, value in local_paths(dc):
                found.append((f"data_configs.{index}.{key}", Path(value)))
        seen: set[tuple[str, Path]] = set()
        return [item for item in found if not (item in seen or seen.add(item))]  # type: ignore[func-returns-value]

    def with_paths(self, mapping: dict[str, str]) -> ResolvedWorkflow:
        """A copy with every path string equal to a key of ``mapping`` replaced by its value."""
        data = replace_strings(self.to_json(), mapping)
        return resolve(validate_config(data), config_path=None, base_dir=self.base_dir)


def replace_strings(value: Any, mapping: dict[str, str]) -> Any:
    """``value`` (JSON-like) with every string equal to a key of ``mapping`` replaced by its value."""
    if isinstance(value, str):
        return mapping.get(value, value)
    if isinstance(value, dict):
        return {k: replace_strings(v, mapping) for k, v in value.items()}
    if isinstance(value, list):
        return [replace_strings(v, mapping) for v in value]
    return value


def load_workflow(config_path: str | Path, *, data: dict[str, Any] | None = None) -> ResolvedWorkflow:
    """Read, validate and resolve a run config file (``data`` replaces the file's parsed content)."""
    path = Path(config_path)
    raw = data if data is not None else read_config_file(path)
    config = validate_config(raw, file=str(path))
    try:
        return resolve(config, config_path=path.resolve(), base_dir=path.resolve().parent)
    except ConfigError as exc:
        raise exc.with_file(str(path)) from None


def resolve(config: RunConfig, *, config_path: Path | None, base_dir: Path) -> ResolvedWorkflow:
    config = config.model_copy(deep=True)
    _absolutize(config, base_dir)
    _resolve_data(config, base_dir)
    data_configs = {dc.name: dc for dc in config.data_configs}
    evaluator = _resolve_evaluator(config, data_configs, base_dir)
    host = _system(config, config.engine.host, "engine.host") or LocalSystemConfig()
    target = _system(config, config.engine.target, "engine.target") or host
    return ResolvedWorkflow(
        config=config,
        config_path=config_path,
        base_dir=base_dir,
        passes=tuple(_resolve_passes(config, base_dir)),
        evaluator=evaluator,
        data_configs=data_configs,
        accelerator=_accelerator(target),
        host=host,
    )


def find_local(value: str, base_dir: Path) -> Path | None:
    """A relative path is looked up beside the config file first, then in the working directory."""
    path = Path(os.path.expanduser(value))
    if path.is_absolute():
        return path if path.exists() else None
    for root in (base_dir, Path.cwd()):
        candidate = (root / path).resolve()
        if candidate.exists():
            return candidate
    return None


def _absolutize(config: RunConfig, base_dir: Path) -> None:
    for key, owner, name, value in list(iter_local_paths(config)):
        found = find_local(value, base_dir)
        if found is None:
            if name_allowed(owner, name) and getattr(owner, "model_loader", None):
                continue  # Olive hands a name that is no local path to the model_loader unchanged
            hint = ""
            if key == "input_model.model_path" and config.input_model.type == "HfModel":
                hint = " (Olivine does not download from a model hub: point model_path at a local folder)"
            elif name_allowed(owner, name):
                hint = " (a name that is not a local path needs a 'model_loader' to receive it)"
            raise ConfigError(f"path '{value}' does not exist{hint}", path=key)
        setattr(owner, name, str(found))


def _resolve_data(config: RunConfig, base_dir: Path) -> None:
    from olivine.data import local_paths, rewrite_paths, validate_data_config

    resolved: list[DataConfig] = []
    for index, dc in enumerate(config.data_configs):
        mapping: dict[str, str] = {}
        for key, value in local_paths(dc):
            found = find_local(value, base_dir)
            if found is None:
                raise ConfigError(f"path '{value}' does not exist", path=f"data_configs.{index}.{key}")
            mapping[value] = str(found)
        dc = rewrite_paths(dc, mapping) if mapping else dc
        try:
            validate_data_config(dc, base_dir=base_dir)
        except ConfigError as exc:
            raise ConfigError(exc.message, path=exc.path or f"data_configs.{dc.name}") from None
        resolved.append(dc)
    config.data_configs = resolved


def _lookup(kind: str, name: str, defined: dict[str, Any], path: str) -> Any:
    if name not in defined:
        known = ", ".join(sorted(defined)) or "none are defined"
        raise ReferenceNotFoundError(f"{kind} '{name}' is not defined (defined: {known})", path=path)
    return defined[name]


def _system(config: RunConfig, ref: str | SystemConfig | None, path: str) -> SystemConfig | None:
    if isinstance(ref, str):
        system: SystemConfig = _lookup("system", ref, config.systems, path)
        return system
    return ref


def _resolve_evaluator(
    config: RunConfig, data_configs: dict[str, DataConfig], base_dir: Path
) -> EvaluatorConfig | None:
    ref = config.engine.evaluator
    if ref is None:
        return None
    evaluator: EvaluatorConfig = (
        _lookup("evaluator", ref, config.evaluators, "engine.evaluator") if isinstance(ref, str) else ref
    )
    where = f"evaluators.{ref}" if isinstance(ref, str) else "engine.evaluator"
    for index, metric in enumerate(evaluator.metrics):
        if isinstance(metric.data_config, str):
            _lookup("data config", metric.data_config, data_configs, f"{where}.metrics.{index}.data_config")
    from olivine.evaluate.metric_configs import validate_evaluator

    validate_evaluator(evaluator, data_configs=data_configs, base_dir=base_dir, path=where)
    return evaluator


def _resolve_passes(config: RunConfig, base_dir: Path) -> list[ResolvedPass]:
    search = config.engine.search_strategy
    out: list[ResolvedPass] = []
    for name, entry in config.passes.items():
        entries = entry if isinstance(entry, list) else [entry]
        if len(entries) != 1:
            raise NotSupportedError(
                f"passes.{name}: a list of alternative passes needs search, "
                "which Olivine does not support yet"
            )
        if search:
            raise NotSupportedError(
                "engine.search_strategy: search is not supported by Olivine yet; "
                "set search_strategy to false or remove it"
            )
        out.append(_resolve_pass(name, entries[0], base_dir))
    defined = {dc.name: dc for dc in config.data_configs}
    for rpass in out:
        data_name = rpass.cls.data_config_name(rpass.config)
        if data_name is not None:
            _lookup("data config", data_name, defined, f"passes.{rpass.name}.data_config")
    return out


def _resolve_pass(name: str, entry: PassEntry, base_dir: Path) -> ResolvedPass:
    path = f"passes.{name}"
    if entry.type not in PASSES:
        raise ConfigError(
            f"unknown pass type '{entry.type}'; supported: {', '.join(PASSES.names())}", path=f"{path}.type"
        )
    cls = PASSES.get(entry.type)
    params = {k: v for k, v in copy.deepcopy(entry.config).items() if v != DEFAULT_VALUE}
    # Without search a searchable parameter takes its default (Olive does the same).
    params = {k: v for k, v in params.items() if v != SEARCHABLE_VALUES}
    try:
        pass_config = cls.config_class.model_validate(params)
    except ValidationError as exc:
        sub, message = format_validation_error(exc)
        if exc.errors()[0]["type"] == "extra_forbidden":
            message = _pass_did_you_mean(cls.config_class, sub, message)
        raise ConfigError(message, path=f"{path}.{sub}" if sub else path) from None
    # Local files a pass reads (e.g. OnnxConversion's user_script) resolve like every other path; the
    # entry is updated too, so the resolved config (and a remote bundle) carries the absolute path.
    for key, owner, field_name, value in list(iter_local_paths(pass_config)):
        found = find_local(value, base_dir)
        if found is None:
            raise ConfigError(f"path '{value}' does not exist", path=f"{path}.{key}")
        setattr(owner, field_name, str(found))
        if key in entry.config:
            entry.config[key] = str(found)
    return ResolvedPass(name=name, type=PASSES.canonical_name(entry.type), cls=cls, config=pass_config)


def _pass_did_you_mean(model: type[BaseModel], key: str, message: str) -> str:
    import difflib

    match = difflib.get_close_matches(key, list(model.model_fields), n=1)
    if match:
        return f"unknown parameter; did you mean '{match[0]}'?"
    return f"unknown parameter; allowed: {', '.join(sorted(model.model_fields))}"


def _accelerator(system: SystemConfig) -> Accelerator:
    accelerators = system.accelerators or []
    if not accelerators:
        return Accelerator()
    first = accelerators[0]
    eps = tuple(first.execution_providers or ()) or (
        ("CPUExecutionProvider",) if first.device == "cpu" else ()
    )
    if not eps:
        raise ConfigError(
            f"accelerator device '{first.device}' needs 'execution_providers'",
            path="systems.accelerators.0.execution_providers",
        )
    return Accelerator(device=first.device, execution_providers=eps)
