"""Resolve a data config into its four components and check their parameters.

For each kind (``load_dataset``, ``pre_process_data``, ``post_process_data``, ``dataloader``) the component
type is the one the data config names, else the container's default (Olive's containers and their
``task``-driven defaults). A type is looked up, case-insensitively, in this order: components the data
config's ``user_script`` registered with :class:`olivine.data.registry.Registry`, Olivine's built-ins, then
a plain function of that name in the ``user_script``.

Parameters of built-ins are checked against their parameter models (:mod:`olivine.data.params`); those of
user components against the function's signature (anything goes when it takes ``**kwargs``). User
components are called the way Olive calls them: ``load(**params)``, ``pre_process(dataset, **params)``,
``post_process(output, **params)``, ``dataloader(dataset, **params)``; a required parameter the config
leaves out is passed as ``None``, as Olive does.
"""

from __future__ import annotations

import difflib
import inspect
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from olivine.config.data import ComponentConfig, DataConfig
from olivine.data.builtins import BUILTINS, CONTAINERS, OLIVE_UNSUPPORTED, Builtin, Container
from olivine.data.params import ComponentParams
from olivine.data.registry import COMPONENT_KINDS, ComponentKind, Registry
from olivine.data.user_script import load_user_script, resolve_path
from olivine.errors import ConfigError, NotSupportedError

FIELD_OF_KIND: dict[ComponentKind, str] = {
    "load_dataset": "load_dataset_config",
    "pre_process_data": "pre_process_data_config",
    "post_process_data": "post_process_data_config",
    "dataloader": "dataloader_config",
}


@dataclass(frozen=True)
class Component:
    """One resolved component: built-in (``builtin`` + validated ``config``) or a user function."""

    kind: ComponentKind
    type_name: str
    params: dict[str, Any]
    builtin: Builtin | None = None
    config: ComponentParams | None = None
    user_func: Callable[..., Any] | None = None

    @property
    def field(self) -> str:
        return FIELD_OF_KIND[self.kind]

    def user_kwargs(self) -> dict[str, Any]:
        """Olive's call convention: every named parameter the config leaves out and that has no default
        is passed as ``None``."""
        assert self.user_func is not None
        kwargs = dict(self.params)
        try:
            parameters = list(inspect.signature(self.user_func).parameters.values())
        except (TypeError, ValueError):  # C callables have no inspectable signature
            return kwargs
        if self.kind != "load_dataset":
            parameters = parameters[1:]
        for param in parameters:
            named = param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY)
            if named and param.name not in kwargs and param.default is param.empty:
                kwargs[param.name] = None
        return kwargs


def container_of(dc: DataConfig) -> Container:
    container = CONTAINERS.get(dc.type.lower())
    if container is None:
        allowed = ", ".join(sorted(c.name for c in CONTAINERS.values()))
        raise ConfigError(f"unknown data container '{dc.type}'; allowed: {allowed}", path="type")
    return container


def resolve_components(dc: DataConfig, *, base_dir: Path | None = None) -> dict[ComponentKind, Component]:
    """Every component of ``dc``, validated. Errors' key paths are relative to the data config.

    Raises:
        ConfigError: unknown container or component type, or a parameter that does not fit.
        NotSupportedError: an Olive component or option Olivine does not provide.
    """
    container = container_of(dc)
    module = load_user_script(dc.user_script, dc.script_dir, base_dir=base_dir) if dc.user_script else None
    defaults = dict(container.defaults)
    for cfg in _configs(dc).values():
        task = (cfg.params.get("task") if cfg else None) or ""
        defaults.update(container.task_components.get(str(task).removesuffix("-with-past"), {}))
    loader = dc.dataloader_config.type if dc.dataloader_config else None
    if defaults["load_dataset"] is None and loader and loader.lower() not in BUILTINS["dataloader"]:
        # Olive's default dataset (local_dataset) is no dataset: the user's own dataloader makes the data.
        defaults["load_dataset"] = "local_dataset"
    return {
        kind: _resolve_one(kind, _configs(dc)[kind], defaults[kind], module, container.name, base_dir)
        for kind in COMPONENT_KINDS
    }


def _configs(dc: DataConfig) -> dict[ComponentKind, ComponentConfig | None]:
    return {kind: getattr(dc, FIELD_OF_KIND[kind]) for kind in COMPONENT_KINDS}


def _resolve_one(
    kind: ComponentKind,
    cfg: ComponentConfig | None,
    default: str | None,
    module: types.ModuleType | None,
    container: str,
    base_dir: Path | None,
) -> Component:
    field = FIELD_OF_KIND[kind]
    type_name = (cfg.type if cfg else None) or default
    params = dict(cfg.params) if cfg else {}
    if type_name is None:
        raise ConfigError(
            f"{container} needs a '{kind}' component type: one registered in user_script or one of "
            f"{', '.join(sorted(BUILTINS[kind]))}",
            path=f"{field}.type",
        )
    key = type_name.lower()
    user = Registry.registered(module.__name__, kind).get(key) if module else None
    builtin = BUILTINS[kind].get(key)
    if user is None and builtin is None and module is not None:
        user = _plain_function(module, type_name)
    if user is not None:
        _check_signature(user, params, skip_first=kind != "load_dataset", path=f"{field}.params")
        return Component(kind, type_name, params, user_func=user)
    if builtin is not None:
        config = _validate_params(builtin, params, base_dir, path=f"{field}.params")
        return Component(kind, type_name, params, builtin=builtin, config=config)
    if key in OLIVE_UNSUPPORTED:
        raise NotSupportedError(f"Olive's '{type_name}' is not provided by Olivine", path=f"{field}.type")
    known = sorted(set(BUILTINS[kind]) | set(Registry.registered(module.__name__, kind) if module else ()))
    raise ConfigError(
        f"unknown {kind} component '{type_name}'{_did_you_mean(key, known)}; allowed: {', '.join(known)}"
        + ("" if module else " (or define it in a user_script)"),
        path=f"{field}.type",
    )


def _plain_function(module: types.ModuleType, name: str) -> Callable[..., Any] | None:
    obj = getattr(module, name, None)
    if obj is None:
        matches = [v for k, v in vars(module).items() if k.lower() == name.lower()]
        obj = matches[0] if len(matches) == 1 else None
    return obj if callable(obj) else None


def _validate_params(builtin: Builtin, params: dict[str, Any], base_dir: Path | None, *, path: str) -> Any:
    try:
        config = builtin.params.model_validate(params)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        loc = ".".join(str(part) for part in error["loc"])
        key = str(error["loc"][0]) if error["loc"] else ""
        if error["type"] == "extra_forbidden":
            fields = sorted(builtin.params.model_fields)
            message = f"unknown parameter{_did_you_mean(key, fields)}; allowed: {', '.join(fields)}"
        elif error["type"] == "missing":
            message = "required parameter is missing"
        else:
            message = f"{error['msg']} (got {error.get('input')!r})"
        raise ConfigError(message, path=f"{path}.{loc}" if loc else path) from None
    if builtin.check is not None:
        try:
            builtin.check(config, base_dir)
        except ConfigError as exc:
            raise type(exc)(exc.message, path=f"{path}.{exc.path}" if exc.path else path) from None
    return config


def _check_signature(
    func: Callable[..., Any], params: dict[str, Any], *, skip_first: bool, path: str
) -> None:
    try:
        parameters = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return  # builtins / C callables: nothing to check against
    if skip_first:
        first = parameters[0] if parameters else None
        if first is not None and first.kind in (first.POSITIONAL_ONLY, first.POSITIONAL_OR_KEYWORD):
            parameters = parameters[1:]
        elif not any(p.kind == p.VAR_POSITIONAL for p in parameters):
            raise ConfigError(
                f"'{func.__name__}' must take the dataset / model output as its first argument", path=path
            )
    if any(p.kind == p.VAR_KEYWORD for p in parameters):
        return
    names = [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for key in params:
        if key not in names:
            allowed = ", ".join(names) or "none"
            raise ConfigError(
                f"unknown parameter of {func.__name__}(){_did_you_mean(key, names)}; allowed: {allowed}",
                path=f"{path}.{key}",
            )


def _did_you_mean(key: str, known: list[str]) -> str:
    match = difflib.get_close_matches(key, known, n=1)
    return f"; did you mean '{match[0]}'?" if match else ""


def validate_data_config(dc: DataConfig, *, base_dir: Path, path: str | None = None) -> None:
    """Check ``dc`` at resolve time: container and component types, every component's parameters, and
    that every local file it reads exists.

    Args:
        dc: the data config.
        base_dir: the folder relative paths are relative to (the config file's folder).
        path: key path prefix for errors; default ``data_configs.<name>``.

    Raises:
        ConfigError: with the full key path, e.g.
            ``data_configs.d.pre_process_data_config.params.max_lenght``.
        NotSupportedError: an Olive feature Olivine does not provide.
    """
    from olivine.data.paths import local_paths

    prefix = path if path is not None else f"data_configs.{dc.name}"
    try:
        for key, value in local_paths(dc, base_dir=base_dir):
            if not resolve_path(value, base_dir).exists():
                raise ConfigError(f"file or folder not found: {resolve_path(value, base_dir)}", path=key)
        components = resolve_components(dc, base_dir=base_dir)
        _check_columns(components, base_dir)
    except ConfigError as exc:
        raise type(exc)(exc.message, path=f"{prefix}.{exc.path}" if exc.path else prefix) from None


def _check_columns(components: dict[ComponentKind, Component], base_dir: Path | None) -> None:
    from olivine.data.params import ComponentParams, HuggingfaceDatasetParams

    load, pre = components["load_dataset"].config, components["pre_process_data"].config
    if isinstance(load, HuggingfaceDatasetParams) and isinstance(pre, ComponentParams):
        from olivine.data.hf import check_columns  # imports numpy: only for the datasets it checks

        check_columns(load, pre, base_dir)


def with_model_task(dc: DataConfig, task: str) -> DataConfig:
    """``dc`` with the input model's ``task`` in its pre- and post-processing parameters, as Olive fills it
    into a ``HuggingfaceContainer`` (which picks its task's components by it: ``text-generation`` rows are
    cut into ``max_seq_len`` blocks, ``feature-extraction`` rows tokenized, ...).

    Only components without a type or of a built-in type get it: a user function keeps its own parameters.
    """
    if dc.type.lower() != "huggingfacecontainer":
        return dc
    updates: dict[str, ComponentConfig] = {}
    for kind in ("pre_process_data", "post_process_data"):
        cfg = getattr(dc, FIELD_OF_KIND[kind]) or ComponentConfig()
        builtin = cfg.type is None or cfg.type.lower() in BUILTINS[kind]
        if builtin and not cfg.params.get("task"):
            updates[FIELD_OF_KIND[kind]] = ComponentConfig(type=cfg.type, params={**cfg.params, "task": task})
    return dc.model_copy(update=updates) if updates else dc
