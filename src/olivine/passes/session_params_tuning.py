"""``OrtSessionParamsTuning`` (formerly ``OrtPerfTuning``): time the model under several onnxruntime
session settings and keep the fastest as the model's ``inference_settings``.

Olive's parameter names (olive/passes/onnx/session_params_tuning.py): ``providers_list``,
``provider_options_list``, ``execution_mode_list``, ``opt_level_list``, ``intra_thread_num_list``,
``inter_thread_num_list``, ``extra_session_config``, ``cpu_cores``, ``data_config``. Each ``*_list``
takes one value (Olive's current form, one value per search point) or a list (the ``OrtPerfTuning`` form):
every combination is tried. An unset thread count is tuned over 1..``cpu_cores`` (powers of two and
``cpu_cores``), as Olive's binary search between 1 and the core count does; inter-op threads only matter
in parallel execution mode. Enum values are onnxruntime's integers or names (``"ORT_PARALLEL"``).

The model's current settings are always a candidate (the baseline), so the output is never slower than
the input by the pass's own measurement, except when the config names exactly one setting (every value
given, no thread count left to tune): that setting is recorded as given, as Olive 0.13 records its search
point. With ``session.intra_op_thread_affinities`` in ``extra_session_config`` the intra-op thread count
is the number of affinity groups + 1, which onnxruntime requires (Olive sets the same).

Timing is sound on a shared machine: every candidate has its
session open before timing starts; rounds interleave the candidates (rotating the order); a candidate's
latency is the median of its round medians; the fastest replaces the baseline only when it was faster in
every round and by at least 3% on the medians (:func:`pick_fastest`). The files are linked (or copied)
unchanged: only the settings change.
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, Field, field_validator

from olivine.config.base import LocalPath
from olivine.config.session import (
    EXECUTION_MODES,
    GRAPH_OPTIMIZATION_LEVELS,
    MAX_THREADS,
    enum_value,
    normalize_session_options,
)
from olivine.errors import PassRunError
from olivine.model.accelerator import Accelerator
from olivine.model.handle import ModelHandle, ModelKind
from olivine.passes.base import Pass, PassConfig, PassContext


def _as_list(value: Any) -> Any:
    return value if isinstance(value, list) else [value]


def _enum_list(members: Mapping[str, int]) -> BeforeValidator:
    return BeforeValidator(lambda v: [None if x is None else enum_value(x, members) for x in _as_list(v)])


ThreadList = Annotated[list[Annotated[int, Field(ge=1, le=MAX_THREADS)] | None], BeforeValidator(_as_list)]


class OrtSessionParamsTuningConfig(PassConfig):
    """Olive's parameters; the timing ones (``warmup_num``, ``repeat_test_num``, ``rounds``) are Olivine's."""

    #: The name of an entry in ``data_configs``; without one, dummy inputs of the model's static shapes.
    data_config: str | None = None
    user_script: LocalPath | None = None
    script_dir: LocalPath | None = None
    device: str = "cpu"
    cpu_cores: Annotated[int, Field(ge=1, le=MAX_THREADS)] | None = None
    io_bind: bool = False
    enable_cuda_graph: bool = False
    providers_list: Annotated[list[Any], BeforeValidator(_as_list)] | None = None
    provider_options_list: Annotated[list[dict[str, Any]], BeforeValidator(_as_list)] = [{}]
    execution_mode_list: Annotated[list[int | None], _enum_list(EXECUTION_MODES)] = [None]
    opt_level_list: Annotated[list[int | None], _enum_list(GRAPH_OPTIMIZATION_LEVELS)] = [None]
    trt_fp16_enable: bool = False
    intra_thread_num_list: ThreadList = [None]
    inter_thread_num_list: ThreadList = [None]
    extra_session_config: dict[str, Any] | None = None
    force_evaluate_other_eps: bool = False
    enable_profiling: bool = False
    warmup_num: Annotated[int, Field(ge=0)] = 5
    repeat_test_num: Annotated[int, Field(ge=1)] = 10
    rounds: Annotated[int, Field(ge=1)] = 5

    @field_validator("enable_profiling")
    @classmethod
    def _no_profiling(cls, value: bool) -> bool:
        if value:
            raise ValueError(
                "not supported: onnxruntime would write a profile file from every session the pass opens, "
                "into the working directory of the process running it; profile the output model with "
                "onnxruntime directly"
            )
        return value

    @field_validator("device")
    @classmethod
    def _cpu_device(cls, value: str) -> str:
        if value.lower() == "cpu":
            return "cpu"
        if value.lower() in ("gpu", "npu", "cuda", "dml"):
            raise ValueError(f"device '{value}': Olivine tunes sessions on the CPU only; allowed: cpu")
        raise ValueError(f"unknown device '{value}'; allowed: cpu")

    @field_validator("providers_list")
    @classmethod
    def _provider_names(cls, value: list[Any] | None) -> list[Any] | None:
        for entry in value or []:
            name = entry[0] if isinstance(entry, list | tuple) and entry else entry
            if not isinstance(name, str) or not name.endswith("ExecutionProvider"):
                raise ValueError(
                    f"expected execution provider names like 'CPUExecutionProvider', got {entry!r}"
                )
        return value


@dataclass(frozen=True)
class Setting:
    """One candidate: an execution provider, its options and the session options."""

    provider: str
    provider_options: dict[str, Any]
    session_options: dict[str, Any]

    def __hash__(self) -> int:  # the dicts are never mutated after construction
        return hash(json.dumps([self.provider, self.provider_options, self.session_options], sort_keys=True))

    def inference_settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = {
            "execution_provider": [self.provider],
            "provider_options": [self.provider_options],
        }
        if self.session_options:
            settings["session_options"] = dict(self.session_options)
        return settings

    def label(self) -> str:
        options = ", ".join(f"{k}={v}" for k, v in sorted(self.session_options.items())) or "defaults"
        return f"{self.provider} ({options})"


class OrtSessionParamsTuning(Pass):
    """Keep the fastest onnxruntime session settings (threads, execution mode, optimization level)."""

    name: ClassVar[str] = "OrtSessionParamsTuning"
    version: ClassVar[str] = "1"
    config_class: ClassVar[type[PassConfig]] = OrtSessionParamsTuningConfig
    accepts: ClassVar[tuple[ModelKind, ...]] = ("onnx",)
    # The settings depend on the machine's speed, not on a library's artifact; onnxruntime's version
    # still decides which settings are fastest.
    libraries: ClassVar[tuple[str, ...]] = ("onnxruntime",)
    # Olive's search_defaults (the execution providers: those of the device available here, the CPU).
    search_values: ClassVar[dict[str, tuple[Any, ...]]] = {
        "providers_list": ("CPUExecutionProvider",),
        "provider_options_list": ({},),
        "execution_mode_list": (None,),
        "opt_level_list": (None,),
        "intra_thread_num_list": (None,),
        "inter_thread_num_list": (None,),
    }

    @classmethod
    def invalid_reason(cls, config: Any, accelerator: Accelerator) -> str | None:
        cfg: OrtSessionParamsTuningConfig = config
        providers = [_provider_name(p) for p in cfg.providers_list or accelerator.execution_providers]
        if cfg.io_bind and "CUDAExecutionProvider" not in providers:
            return "io_bind: I/O binding applies to GPU execution providers, not to the CPU"
        if cfg.enable_cuda_graph and "CUDAExecutionProvider" not in providers:
            return "enable_cuda_graph: CUDA graph capture needs the CUDA execution provider"
        if cfg.trt_fp16_enable and "TensorrtExecutionProvider" not in providers:
            return "trt_fp16_enable: applies to the TensorRT execution provider only"
        others = [p for p in providers if p not in accelerator.execution_providers]
        if others and not cfg.force_evaluate_other_eps:
            return (
                f"providers_list: {', '.join(others)} is not the target's execution provider "
                f"({', '.join(accelerator.execution_providers)}); set force_evaluate_other_eps to try it"
            )
        return None

    def run(self, model: ModelHandle, config: Any, output_dir: Path, ctx: PassContext) -> ModelHandle:
        from olivine.passes.session_timing import time_settings

        cfg: OrtSessionParamsTuningConfig = config
        reason = self.invalid_reason(cfg, ctx.accelerator)
        if reason is not None:
            raise PassRunError(self.name, reason)
        baseline = _baseline(model, ctx.accelerator)
        configured = candidate_settings(cfg, ctx.accelerator)
        candidates = [baseline, *(s for s in configured if s != baseline)]
        inputs = _inputs(model, cfg, ctx)
        timings = time_settings(model, candidates, inputs, cfg, ctx)
        affinities = (cfg.extra_session_config or {}).get("session.intra_op_thread_affinities")
        if len(configured) == 1 and (None not in cfg.intra_thread_num_list or affinities):
            # The config names one setting (Olive 0.13's form: one search point): it is the model's
            # settings, as in Olive, whatever the timing against the current ones says.
            best = configured[0]
            ctx.logger.info("one setting configured: recorded as given (timed beside the current ones)")
        else:
            best = pick_fastest(timings, baseline)
        for setting, rounds in timings.items():
            ctx.logger.info(
                "%s%s: %.2f ms (rounds: %s)",
                "* " if setting == best else "  ",
                setting.label(),
                1000 * statistics.median(rounds),
                ", ".join(f"{1000 * r:.2f}" for r in rounds),
            )
        output = _link_model(model, output_dir)
        return output.with_config(inference_settings=best.inference_settings())

    def check_output(self, output: ModelHandle) -> None:
        from olivine.model.runner import OnnxRunner

        settings = output.config.get("inference_settings") or {}
        providers = tuple(settings.get("execution_provider") or ("CPUExecutionProvider",))
        OnnxRunner(output, Accelerator(execution_providers=providers))


def _provider_name(entry: Any) -> str:
    return str(entry[0] if isinstance(entry, list | tuple) else entry)


def thread_counts(given: int | None, cores: int) -> list[int | None]:
    """The thread counts to try: the one given, else 1, the powers of two below ``cores``, and ``cores``."""
    if given is not None:
        return [given]
    counts = {1, cores}
    power = 2
    while power < cores:
        counts.add(power)
        power *= 2
    out: list[int | None] = [*sorted(counts)]
    return out


def candidate_settings(cfg: OrtSessionParamsTuningConfig, accelerator: Accelerator) -> list[Setting]:
    """Every combination of the configured values, thread counts expanded, duplicates dropped."""
    cores = cfg.cpu_cores or _physical_cores()
    providers = cfg.providers_list or list(accelerator.execution_providers[:1])
    intra_list = cfg.intra_thread_num_list
    affinities = (cfg.extra_session_config or {}).get("session.intra_op_thread_affinities")
    if affinities:
        # onnxruntime needs one intra-op thread per affinity group plus the caller's (Olive sets the same).
        intra_list = [len(str(affinities).split(";")) + 1]
    out: list[Setting] = []
    combos = itertools.product(
        providers, cfg.provider_options_list, cfg.execution_mode_list, cfg.opt_level_list
    )
    for provider, options, mode, level in combos:
        name = _provider_name(provider)
        if isinstance(provider, list | tuple) and len(provider) > 1:
            options = {**dict(provider[1]), **options}
        parallel = mode == EXECUTION_MODES["ORT_PARALLEL"]
        for intra_given, inter_given in itertools.product(intra_list, cfg.inter_thread_num_list):
            inters = thread_counts(inter_given, cores) if parallel else [inter_given]
            for intra, inter in itertools.product(thread_counts(intra_given, cores), inters):
                session = {
                    "execution_mode": mode,
                    "graph_optimization_level": level,
                    "intra_op_num_threads": intra,
                    "inter_op_num_threads": inter,
                    "extra_session_config": cfg.extra_session_config,
                    "enable_profiling": cfg.enable_profiling or None,
                }
                setting = Setting(name, dict(options), normalize_session_options(session))
                if setting not in out:
                    out.append(setting)
    return out


def _physical_cores() -> int:
    try:
        import psutil

        return int(psutil.cpu_count(logical=False) or os.cpu_count() or 1)
    except ImportError:  # psutil is optional; logical cores are the best guess without it
        return os.cpu_count() or 1


def _baseline(model: ModelHandle, accelerator: Accelerator) -> Setting:
    settings = model.config.get("inference_settings") or {}
    providers = settings.get("execution_provider") or list(accelerator.execution_providers[:1])
    options = (settings.get("provider_options") or [{}])[0] or {}
    return Setting(
        _provider_name(providers[0]),
        dict(options),
        normalize_session_options(settings.get("session_options")),
    )


#: A setting replaces the model's current one only when its median is at least this much lower.
MIN_GAIN = 0.03


def pick_fastest(timings: dict[Setting, list[float]], baseline: Setting) -> Setting:
    """The candidate with the lowest median, if it beat the baseline in every round and by ``MIN_GAIN``
    on the medians; else the baseline.

    Rounds are paired (every candidate runs once per round, close in time), so a slow spell on a shared
    machine hits both sides of a comparison; a real gain wins every round, noise rarely does.
    """
    medians = {s: statistics.median(r) for s, r in timings.items()}
    best = min(medians, key=lambda s: medians[s])
    if best == baseline or baseline not in timings:
        return best
    every_round = all(b < a for b, a in zip(timings[best], timings[baseline], strict=True))
    clear_gain = medians[best] < (1 - MIN_GAIN) * medians[baseline]
    return best if every_round and clear_gain else baseline


def _inputs(model: ModelHandle, cfg: OrtSessionParamsTuningConfig, ctx: PassContext) -> dict[str, Any]:
    """The first batch of the data config (a name from ``data_configs`` or inline), else dummy inputs
    matching the model's static input shapes."""
    from olivine.config.data import DataConfig
    from olivine.data.pipeline import build_dataloader
    from olivine.evaluate.default_data import latency_data_config

    data: DataConfig
    if cfg.data_config is not None:
        known = ctx.data_configs
        if cfg.data_config not in known:
            raise PassRunError(
                "OrtSessionParamsTuning", f"data_config '{cfg.data_config}' is not in data_configs"
            )
        data = known[cfg.data_config]
    else:
        try:
            data = latency_data_config(model)
        except Exception:  # EvaluationError: dynamic input shapes
            raise PassRunError(
                "OrtSessionParamsTuning",
                "data_config: the pass has no data_config and the model's input shapes are not static; "
                "give the pass a data_config (a name in data_configs, e.g. a DummyDataContainer with "
                "input_shapes)",
            ) from None
    tokenizer = model.attributes.get("hf_model_path")
    loader = build_dataloader(data, model=model, tokenizer_path=tokenizer, base_dir=ctx.base_dir)
    inputs, _ = loader.first_batch()
    return dict(inputs)


def _link_model(model: ModelHandle, output_dir: Path) -> ModelHandle:
    """The same model files under ``output_dir``, nothing rewritten: the graph file hard-linked where
    possible, every other file copied (onnx >= 1.18 and onnxruntime refuse external data with more than
    one link as a possible attack, so a link would break the user's own model and every later pass)."""
    import shutil

    source = Path(str(model.model_path))
    root = source if source.is_dir() else source.parent
    output_dir.mkdir(parents=True, exist_ok=True)
    for file in model.files():
        target = output_dir / file.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            if file.suffix.lower() != ".onnx":
                raise OSError("not the graph file")
            os.link(file, target)
        except OSError:
            shutil.copy2(file, target)
    config = dict(model.config)
    config["model_path"] = str(output_dir if source.is_dir() else output_dir / source.name)
    return ModelHandle(kind="onnx", config=config)
