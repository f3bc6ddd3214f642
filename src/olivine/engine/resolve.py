"""Resolve a validated run config into a workflow the engine can run.

One explicit step (not inside validators): relative paths become absolute and must exist, names (systems,
evaluators, data configs) resolve to their definitions, pass parameters are validated against each pass's
own config model, and data components against theirs. Every problem is a :class:`ConfigError` naming the
file and key path.
"""

from __future__ import annotations

import copy
import difflib
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from olivine.config.data import DataConfig
from olivine.config.engine import SearchStrategyConfig
from olivine.config.evaluators import EvaluatorConfig
from olivine.config.loader import format_validation_error, read_config_file, validate_config
from olivine.config.passes import DEFAULT_VALUE, SEARCHABLE_VALUES, PassEntry
from olivine.config.paths import iter_local_paths, name_allowed, path_text_problem
from olivine.config.systems import LocalSystemConfig, SystemConfig
from olivine.config.workflow import RunConfig
from olivine.errors import ConfigError, NotSupportedError, ReferenceNotFoundError, UserScriptError
from olivine.model.accelerator import Accelerator
from olivine.passes.base import PASSES, Pass
from olivine.search.space import Dimension, PassOption, PassSlot, ResolvedPass

logger = logging.getLogger(__name__)

__all__ = ["ResolvedPass", "ResolvedWorkflow", "load_workflow", "resolve", "resolve_slots"]


@dataclass(frozen=True)
class ResolvedWorkflow:
    config: RunConfig
    config_path: Path | None
    base_dir: Path
    slots: tuple[PassSlot, ...]
    evaluator: EvaluatorConfig | None
    data_configs: dict[str, DataConfig]
    accelerator: Accelerator
    host: SystemConfig = field(default_factory=LocalSystemConfig)

    @property
    def workflow_id(self) -> str:
        return self.config.workflow_id

    @property
    def search(self) -> SearchStrategyConfig | None:
        """The search strategy in effect, or None (no search: one chain, searchable parameters take
        their defaults)."""
        return self.config.engine.search

    @property
    def passes(self) -> tuple[ResolvedPass, ...]:
        """The default chain: each slot's first option with every searched parameter at its first
        choice (without search, the only chain)."""
        return tuple(_default_step(slot.name, slot.options[0]) for slot in self.slots)

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
        for slot in self.slots:
            for option in slot.options:
                step = _default_step(slot.name, option)
                found += [
                    (f"passes.{slot.name}.{k}", Path(v)) for k, _, _, v in iter_local_paths(step.config)
                ]
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


def load_workflow(
    config_path: str | Path, *, data: dict[str, Any] | None = None, cpu_fallback: bool = False
) -> ResolvedWorkflow:
    """Read, validate and resolve a run config file (``data`` replaces the file's parsed content).

    With ``cpu_fallback`` (the user asked for it), a config that targets a GPU, an NPU or another
    execution provider is rewritten to run on the CPU, with a warning for each key changed; without it,
    such a config is refused.
    """
    path = Path(config_path)
    raw = data if data is not None else read_config_file(path)
    if cpu_fallback:
        from olivine.config.cpu_fallback import to_cpu

        raw, notes = to_cpu(raw)
        for note in notes:
            logger.warning("%s: CPU fallback (asked for): %s", path, note)
    config = validate_config(raw, file=str(path))
    try:
        return resolve(config, config_path=path.resolve(), base_dir=path.resolve().parent)
    except ConfigError as exc:
        raise exc.with_file(str(path)) from None


def resolve(config: RunConfig, *, config_path: Path | None, base_dir: Path) -> ResolvedWorkflow:
    for name, kind in config.olive_only_systems.items():
        logger.warning(
            "systems.%s: %s system declared but not used; Olivine ignores it (not supported yet)", name, kind
        )
    config = config.model_copy(deep=True)
    # The target first: a GPU/NPU config is refused for what it targets, not for a pass option it implies
    # or a package its data script needs.
    host = _system(config, config.engine.host, "engine.host") or LocalSystemConfig()
    target = _system(config, config.engine.target, "engine.target") or host
    accelerator = _accelerator(target, _system_path(config, config.engine.target or config.engine.host))
    _absolutize(config, base_dir)
    _check_model_script(config)
    _resolve_data(config, base_dir)
    data_configs = {dc.name: dc for dc in config.data_configs}
    evaluator = _resolve_evaluator(config, data_configs, base_dir)
    _check_inference_providers(config, evaluator)
    slots = tuple(resolve_slots(config, base_dir))
    _check_fixed_steps(config, slots, accelerator)
    _check_hf_task(config, slots, evaluator)
    _check_names_in_input_model(config, slots, accelerator)
    return ResolvedWorkflow(
        config=config,
        config_path=config_path,
        base_dir=base_dir,
        slots=slots,
        evaluator=evaluator,
        data_configs=data_configs,
        accelerator=accelerator,
        host=host,
    )


def _check_fixed_steps(config: RunConfig, slots: tuple[PassSlot, ...], accelerator: Accelerator) -> None:
    """Without search, each pass has one configuration: one the target cannot run (ModelBuilder fp16 on the
    CPU, ...) is refused now, so --dry-run says what the run would (with search it is a pruned candidate)."""
    if config.engine.search is not None:
        return
    for slot in slots:
        for option in slot.options:
            if option.size != 1:
                continue
            step = option.build(slot.name, option.values_at(0), accelerator)
            if isinstance(step, str):
                where, _, reason = step.partition(": ")
                raise ConfigError(reason or step, path=where.split(" (")[0])


def _check_names_in_input_model(
    config: RunConfig, slots: tuple[PassSlot, ...], accelerator: Accelerator
) -> None:
    """The first pass's names of inputs, outputs, nodes and dimensions, checked against the input ONNX
    model when it is a local file (later passes read models that do not exist yet)."""
    if not slots or config.input_model.type != "ONNXModel":
        return
    from olivine.engine.identity import handle_from_input_config

    try:
        path = handle_from_input_config(config.input_model).onnx_path
    except ValueError:
        return
    if not path.is_file():
        return
    slot = slots[0]
    built = [
        option.build(slot.name, option.values_at(0), accelerator)
        for option in slot.options
        if option.size == 1
    ]
    # Searched options are checked when a candidate runs; a pass that names no part of its input has no check.
    steps = [s for s in built if not isinstance(s, str) and _checks_its_input(s.cls)]
    if not steps:
        return
    import onnx

    try:
        data = path.read_bytes()  # the graph; its external data is not read
    except OSError:
        return
    for step in steps:
        try:
            proto = onnx.load_model_from_string(data)  # a copy per check: each may change its own
        except Exception:  # protobuf's DecodeError, ...: the run says what is wrong with the model
            return
        problem = step.cls.input_problem(step.config, proto)
        if problem is not None:
            raise ConfigError(f"{problem[1]} (in {path.name})", path=f"passes.{slot.name}.{problem[0]}")


def _checks_its_input(cls: type[Pass]) -> bool:
    """Whether the pass has an :meth:`Pass.input_problem` of its own (or of a pass it extends)."""
    return any("input_problem" in vars(c) for c in cls.__mro__ if c is not Pass)


def _check_model_script(config: RunConfig) -> None:
    """A model script is imported only when a pass loads the model: its syntax and the packages it
    imports are checked now, so that --dry-run finds what the run would fail on."""
    from olivine.config.script_imports import script_problem

    script = getattr(config.input_model, "model_script", None)
    if not script:
        return
    script_dir = getattr(config.input_model, "script_dir", None)
    folders = [Path(script).parent] + ([Path(script_dir)] if script_dir else [])
    problem = script_problem(Path(script), folders)
    if problem is not None:
        raise UserScriptError(problem, path="input_model.model_script")


def _check_inference_providers(config: RunConfig, evaluator: EvaluatorConfig | None) -> None:
    """The execution providers named in ``inference_settings`` (the input model's, and each metric's of
    the evaluator in use) must be the CPU's: a model is never silently run on another provider."""
    found: list[tuple[str, list[str]]] = []
    settings = getattr(config.input_model, "inference_settings", None)
    if settings is not None:
        found.append(("input_model.inference_settings", settings.provider_names()))
    ref = config.engine.evaluator
    where = f"evaluators.{ref}" if isinstance(ref, str) else "engine.evaluator"
    for index, metric in enumerate(evaluator.metrics if evaluator else []):
        metric_settings = metric.user_config.inference_settings if metric.user_config else None
        if metric_settings is not None and metric_settings.onnx is not None:
            key = f"{where}.metrics.{index}.user_config.inference_settings.onnx"
            found.append((key, metric_settings.onnx.provider_names()))
    for key, names in found:
        others = [name for name in names if name != "CPUExecutionProvider"]
        if others:
            _check_provider_names(others, f"{key}.execution_provider")
            raise NotSupportedError(
                f"{', '.join(others)} not supported; Olivine runs with CPUExecutionProvider "
                "(olivine run --cpu-fallback runs this config on the CPU instead)",
                path=f"{key}.execution_provider",
            )


def _system_path(config: RunConfig, ref: str | SystemConfig | None) -> str:
    """The key path of the target system, for messages (``systems.<name>`` or the inline engine key)."""
    if isinstance(ref, str):
        return f"systems.{ref}"
    return "engine.target" if config.engine.target is not None else "engine.host"


def _check_hf_task(config: RunConfig, slots: tuple[PassSlot, ...], evaluator: EvaluatorConfig | None) -> None:
    """Refuse, before anything runs, an HfModel task that Olivine cannot load when the workflow loads it."""
    model = config.input_model
    if model.type != "HfModel":
        return
    first_loads = bool(slots) and any(getattr(o.cls, "loads_torch_module", False) for o in slots[0].options)
    evaluated = evaluator is not None and (config.engine.evaluate_input_model or not slots)
    if not (first_loads or evaluated):
        return
    from olivine.model.hf_tasks import unsupported_reason

    reason = unsupported_reason(model.task, given="task" in model.model_fields_set)
    if reason is not None:
        raise ConfigError(reason, path="input_model.task")


def find_local(value: str, base_dir: Path) -> Path | None:
    """A relative path is looked up beside the config file first, then in the working directory.

    A value no file can have (a NUL byte, a part over 255 bytes) is not found; the caller names the key."""
    if path_text_problem(value) is not None:
        return None
    try:
        path = Path(os.path.expanduser(value))
        if path.is_absolute():
            return path if path.exists() else None
        for root in (base_dir, Path.cwd()):
            candidate = (root / path).resolve()
            if candidate.exists():
                return candidate
    except (OSError, ValueError):  # e.g. a path too long for the system as a whole
        return None
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


def _model_task(config: RunConfig) -> str | None:
    """The task Olive fills into a HuggingfaceContainer's components: an HfModel's (Olive's default when
    absent), or the ``hf_task`` an ONNXModel's attributes record (Olive's own conversions write it)."""
    model = config.input_model
    if model.type == "HfModel":
        return str(model.task)
    attributes = getattr(model, "model_attributes", None) or {}
    task = attributes.get("hf_task") if model.type == "ONNXModel" else None
    return str(task) if task else None


def _resolve_data(config: RunConfig, base_dir: Path) -> None:
    from olivine.data import local_paths, rewrite_paths, validate_data_config
    from olivine.data.components import with_model_task

    task = _model_task(config)
    resolved: list[DataConfig] = []
    for index, dc in enumerate(config.data_configs):
        if task is not None:
            dc = with_model_task(dc, task)
        mapping: dict[str, str] = {}
        # With base_dir, a tokenizer model_name that is a folder beside the config counts as a local path,
        # so it is made absolute here and bundled for remote hosts like every other file.
        for key, value in local_paths(dc, base_dir=base_dir):
            found = find_local(value, base_dir)
            if found is None:
                raise ConfigError(f"path '{value}' does not exist", path=f"data_configs.{index}.{key}")
            mapping[value] = str(found)
        dc = rewrite_paths(dc, mapping, base_dir=base_dir) if mapping else dc
        try:
            validate_data_config(dc, base_dir=base_dir, path=f"data_configs.{index}")
        except ConfigError as exc:
            raise type(exc)(exc.message, path=exc.path or f"data_configs.{index}") from None
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
    if not evaluator.metrics:
        return None  # Olive accepts an evaluator without metrics: nothing is evaluated
    for index, metric in enumerate(evaluator.metrics):
        if isinstance(metric.data_config, str):
            _lookup("data config", metric.data_config, data_configs, f"{where}.metrics.{index}.data_config")
    from olivine.evaluate.metric_configs import validate_evaluator

    validate_evaluator(evaluator, data_configs=data_configs, base_dir=base_dir, path=where)
    return evaluator


def _default_step(name: str, option: PassOption) -> ResolvedPass:
    step = option.build(name, option.values_at(0), _ANY_ACCELERATOR)
    if isinstance(step, str):  # resolve_slots validated the defaults; a pass may still refuse them
        step = ResolvedPass(
            name, option.type, option.cls, option.cls.config_class.model_validate(option.fixed)
        )
    return step


_ANY_ACCELERATOR = Accelerator()


def resolve_slots(config: RunConfig, base_dir: Path) -> list[PassSlot]:
    """The pass slots of ``config`` (see :mod:`olivine.search.space`)."""
    search = config.engine.search
    if search is not None and config.engine.evaluator is None:
        raise ConfigError(
            "search needs an evaluator to rank candidates: set engine.evaluator, or remove search_strategy",
            path="engine.search_strategy",
        )
    slots: list[PassSlot] = []
    for name, entry in config.passes.items():
        entries = entry if isinstance(entry, list) else [entry]
        if not entries:
            raise ConfigError("an empty list of alternative passes", path=f"passes.{name}")
        if len(entries) > 1 and search is None:
            raise ConfigError(
                "a list of alternative passes needs search: set engine.search_strategy (e.g. true)",
                path=f"passes.{name}",
            )
        options = []
        for index, item in enumerate(entries):
            path = f"passes.{name}" if len(entries) == 1 else f"passes.{name}.{index}"
            option = _resolve_option(path, item, base_dir, search)
            data_name = option.cls.data_config_name(_default_step(name, option).config)
            if data_name is not None:
                defined = {dc.name: dc for dc in config.data_configs}
                _lookup("data config", data_name, defined, f"{path}.data_config")
            options.append(option)
        slots.append(PassSlot(name, tuple(options)))
    return slots


def _resolve_option(
    path: str, entry: PassEntry, base_dir: Path, search: SearchStrategyConfig | None
) -> PassOption:
    if entry.type not in PASSES:
        close = difflib.get_close_matches(entry.type, list(PASSES.names()), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(
            f"unknown pass type '{entry.type}'{hint}; supported: {', '.join(PASSES.names())}",
            path=f"{path}.type",
        )
    cls = PASSES.get(entry.type)
    searching = search is not None and not entry.disable_search
    params = {k: v for k, v in copy.deepcopy(entry.config).items() if v != DEFAULT_VALUE}
    params = _drop_foreign_external_data_keys(path, cls, params)
    params = _drop_nulls(path, cls, params)
    fixed: dict[str, Any] = {}
    dims: list[Dimension] = []
    conditional: list[str] = []
    for key, value in params.items():
        if value == SEARCHABLE_VALUES and searching and key in cls.conditional_search_values:
            conditional.append(key)  # Olive's Conditional: the value follows the parents' values
            continue
        choices = _choices(cls, key, value, f"{path}.{key}", searching)
        if choices is None:
            fixed[key] = value
        elif len(choices) == 1:
            fixed[key] = choices[0]
        elif choices:
            dims.append(Dimension(key, choices))
    if searching and search is not None and search.include_pass_params:
        # Olive: under search, a searchable parameter the config leaves unset is searched too.
        fields = cls.config_class.model_fields
        given = {*params, *(cls.legacy_names.get(key, key) for key in params)}
        for key, values in cls.search_values.items():
            if key not in given and key in fields and len(values) > 1:
                dims.append(Dimension(key, tuple(values)))
        conditional += [key for key in cls.conditional_search_values if key not in given and key in fields]
    why, ignored = cls.ignored_params(fixed)
    given_ignored = [k for k in ignored if k in params]
    if given_ignored:
        logger.warning("%s: %s: %s not used", path, why, ", ".join(given_ignored))
    dims = [d for d in dims if d.param not in ignored]
    ordered = [*cls.search_first, *(f for f in cls.config_class.model_fields if f not in cls.search_first)]
    order = {name: i for i, name in enumerate(ordered)}
    dims.sort(key=lambda d: order.get(d.param, len(order)))
    option = PassOption(PASSES.canonical_name(entry.type), cls, fixed, tuple(dims), tuple(conditional))
    _check_defaults(path, option)
    return _with_absolute_paths(path, option, entry, base_dir)


def _drop_nulls(path: str, cls: type[Pass], params: dict[str, Any]) -> dict[str, Any]:
    """``params`` without the nulls that stand for leaving a parameter out (its default; under search,
    searched as if unset): see :class:`~olivine.passes.base.PassConfig`. A switch whose default is true
    is named: Olive reads such a null as false."""
    config_class = cls.config_class
    nulls = [k for k, v in params.items() if v is None and config_class.null_means_unset(k)]
    for key in nulls:
        default = config_class.model_fields[key].default
        if default is True:
            logger.warning(
                "%s.%s: null is taken as not given (its default, true); Olive reads it as false, so write "
                "false to turn it off",
                path,
                key,
            )
    return {k: v for k, v in params.items() if k not in nulls}


def _choices(cls: type[Pass], key: str, value: Any, path: str, searching: bool) -> tuple[Any, ...] | None:
    """The choices ``value`` asks for, or None when it is a plain value (empty: take the default)."""
    if value == SEARCHABLE_VALUES:
        if not searching:
            return ()  # Olive without search: the parameter takes its default
        if key not in cls.search_values:
            raise ConfigError(
                f"{cls.name} declares no search values for '{key}' (searchable: {_searchable(cls)})",
                path=path,
            )
        return tuple(cls.search_values[key])
    if isinstance(value, dict) and value.get("olive_parameter_type") == "SearchParameter":
        if value.get("type") != "Categorical" or not isinstance(value.get("support"), list):
            raise ConfigError(
                "only Categorical search parameters ({'type': 'Categorical', 'support': [...]}) "
                "are supported",
                path=path,
            )
        if not searching:
            raise ConfigError("a search parameter needs search: set engine.search_strategy", path=path)
        if not value["support"]:
            raise ConfigError(
                "a Categorical search parameter needs at least one value in 'support'", path=path
            )
        return tuple(value["support"])
    declared = _declared(cls, key)
    if isinstance(value, list) and value and declared and _each_valid(cls, key, value):
        # Olive: a non-empty list for a searchable parameter whose items are valid values is a choice.
        if not searching and _takes_a_list(cls, key):
            return None  # without search, a parameter that takes a list (OrtPerfTuning's *_list) has it
        if not searching:
            # Olive 0.13 refuses it too: without search a list is validated as one value of the item type.
            one = f"give the value itself ({value[0]!r}, not a list)" if len(value) == 1 else "give one value"
            raise ConfigError(
                "a list is a set of choices to search, and this workflow has no search (Olive refuses a "
                f"list here too): {one}, or set engine.search_strategy",
                path=path,
            )
        return tuple(value)
    return None


def _each_valid(cls: type[Pass], key: str, values: list[Any]) -> bool:
    from pydantic import TypeAdapter

    field = cls.config_class.model_fields.get(key)
    if field is None or field.annotation is None:
        return True  # a legacy alias (e.g. weight_type): the pass validates the combination
    adapter: TypeAdapter[Any] = TypeAdapter(field.annotation)
    try:
        for item in values:
            adapter.validate_python(item)
    except ValidationError:
        return False
    return True


#: Olive's external-data keys (``get_external_data_config``), shared by its ONNX-writing passes. Olive's docs
#: also put them on passes that lack them (ModelBuilder), where Olive 0.13 ignores them with a warning.
_EXTERNAL_DATA_KEYS = (
    "save_as_external_data",
    "all_tensors_to_one_file",
    "external_data_name",
    "size_threshold",
    "convert_attribute",
)


def _drop_foreign_external_data_keys(path: str, cls: type[Pass], params: dict[str, Any]) -> dict[str, Any]:
    """``params`` without the external-data keys ``cls`` does not take, each dropped with a warning (as Olive
    0.13 does); any other unknown key stays, to be refused as a typo."""
    fields = cls.config_class.model_fields
    foreign = [k for k in params if k in _EXTERNAL_DATA_KEYS and k not in fields]
    for key in foreign:
        logger.warning(
            "%s.%s ignored: %s has no such parameter (it writes its own files); Olive 0.13 ignores it too",
            path,
            key,
            cls.name,
        )
    return {k: v for k, v in params.items() if k not in foreign}


def _check_defaults(path: str, option: PassOption) -> None:
    """Fixed parameters must validate (searched ones at their first choice; a combination of searched
    values that the pass refuses is an invalid candidate, not a config error)."""
    searched = {d.param for d in option.dims}
    try:
        option.cls.config_class.model_validate({**option.fixed, **option.values_at(0)})
    except ValidationError as exc:
        sub, message = format_validation_error(exc)
        if sub.split(".")[0] in searched:
            return
        unknown = exc.errors()[0]["type"] == "extra_forbidden"
        if unknown:
            message = _pass_did_you_mean(option.cls.config_class, sub, message)
        lead, rest = _key_from_message(option.cls.config_class, message)
        if lead and (not sub or lead == sub or lead.startswith(sub + ".")):
            sub, message = lead, rest
            if sub.split(".")[0] in searched:
                return
        top = sub.split(".")[0]
        if (
            sub
            and not unknown
            and isinstance(option.fixed.get(top), list)
            and not _takes_a_list(option.cls, top)
        ):
            message += _list_hint(option.cls, top)
        raise ConfigError(message, path=f"{path}.{sub}" if sub else path) from None


def _takes_a_list(cls: type[Pass], key: str) -> bool:
    """Whether parameter ``key`` of ``cls`` takes a list as its value (then a list is not a search)."""
    from pydantic import TypeAdapter

    field = cls.config_class.model_fields.get(key)
    if field is None or field.annotation is None:
        return False
    try:
        TypeAdapter(field.annotation).validate_python([])
    except ValidationError:
        return False
    return True


def _declared(cls: type[Pass], key: str) -> bool:
    """Whether ``cls`` declares search values (plain or conditional) for ``key``."""
    return key in cls.search_values or key in cls.conditional_search_values


def _searchable(cls: type[Pass]) -> str:
    """The parameters ``cls`` declares search values for, for a message ("none" when it has none)."""
    return ", ".join(sorted([*cls.search_values, *cls.conditional_search_values])) or "none"


def _list_hint(cls: type[Pass], key: str) -> str:
    """What a list given to a parameter that takes one value means (Olive's choice rule)."""
    if _declared(cls, key):
        return "; a list of choices to search must be non-empty, and each item a valid value"
    return (
        f"; a list is a set of search choices only for a parameter {cls.name} declares searchable "
        f'({_searchable(cls)}); to search another one give {{"olive_parameter_type": "SearchParameter", '
        '"type": "Categorical", "support": [...]} and set engine.search_strategy'
    )


_LEADING_KEY = re.compile(r"^([A-Za-z_]\w*(?:\[\d+\]|\.\w+)*): (.+)$", re.S)


def _key_from_message(model: type[BaseModel], message: str) -> tuple[str, str]:
    """A pass's cross-field check names its key first (``"surgeries[0]: ..."``); that key joins the key
    path (``passes.t.surgeries.0``), so every error reads ``file: key.path: what``."""
    found = _LEADING_KEY.match(message)
    if found is None or found.group(1).split("[")[0].split(".")[0] not in model.model_fields:
        return "", message
    key = re.sub(r"\[(\d+)\]", r".\1", found.group(1))
    return key, found.group(2)


def _with_absolute_paths(path: str, option: PassOption, entry: PassEntry, base_dir: Path) -> PassOption:
    """Local files a pass reads (e.g. OnnxConversion's user_script) resolve like every other path; the
    entry is updated too, so the resolved config (and a remote bundle) carries the absolute path."""
    step = option.build("-", option.values_at(0), _ANY_ACCELERATOR)
    if isinstance(step, str):
        return option
    fixed = dict(option.fixed)
    for key, _owner, _field_name, value in list(iter_local_paths(step.config)):
        found = find_local(value, base_dir)
        if found is None:
            raise ConfigError(f"path '{value}' does not exist", path=f"{path}.{key}")
        if key in fixed:
            fixed[key] = str(found)
        if key in entry.config:
            entry.config[key] = str(found)
    return PassOption(option.type, option.cls, fixed, option.dims, option.conditional)


def _pass_did_you_mean(model: type[BaseModel], key: str, message: str) -> str:
    match = difflib.get_close_matches(key, list(model.model_fields), n=1)
    if match:
        return f"unknown parameter; did you mean '{match[0]}'?"
    return f"unknown parameter; allowed: {', '.join(sorted(model.model_fields))}"


def _accelerator(system: SystemConfig, path: str) -> Accelerator:
    accelerators = system.accelerators or []
    if not accelerators:
        return Accelerator()
    for index, accelerator in enumerate(accelerators):
        _check_cpu(accelerator.device, accelerator.execution_providers or [], f"{path}.accelerators.{index}")
    first = accelerators[0]
    eps = tuple(first.execution_providers or ()) or (
        ("CPUExecutionProvider",) if first.device == "cpu" else ()
    )
    if not eps:
        raise ConfigError(
            f"accelerator device '{first.device}' needs 'execution_providers'",
            path=f"{path}.accelerators.0.execution_providers",
        )
    return Accelerator(device=first.device, execution_providers=eps)


def _check_cpu(device: str, providers: list[str], path: str) -> None:
    """Olivine runs models on the CPU: refuse other devices and execution providers before anything runs."""
    if device != "cpu":
        raise NotSupportedError(
            f"device '{device}' is not supported; Olivine runs on the CPU "
            "(device: cpu, execution_providers: [CPUExecutionProvider]; "
            "olivine run --cpu-fallback runs this config on the CPU instead)",
            path=f"{path}.device",
        )
    others = [ep for ep in providers if ep != "CPUExecutionProvider"]
    if others:
        _check_provider_names(others, f"{path}.execution_providers")
        raise NotSupportedError(
            f"{', '.join(others)} not supported; Olivine runs with CPUExecutionProvider "
            "(olivine run --cpu-fallback runs this config on the CPU instead)",
            path=f"{path}.execution_providers",
        )


def _check_provider_names(names: list[str], path: str) -> None:
    """A name onnxruntime does not know is a typo, not a device to fall back from: say so."""
    import onnxruntime as ort

    known = ort.get_all_providers()
    unknown = [name for name in names if name not in known]
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], known, n=1)
        hint = (
            f"did you mean '{close[0]}'?"
            if close
            else f"onnxruntime {ort.__version__} knows: {', '.join(known)}"
        )
        raise ConfigError(f"unknown execution provider '{unknown[0]}'; {hint}", path=path)
