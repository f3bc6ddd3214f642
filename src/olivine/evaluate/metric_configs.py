"""Each sub-metric's ``metric_config`` (Olive's / torchmetrics' names), and resolve-time checks of an
evaluator: metric configs, data config references, user scripts and their functions.

Accuracy options Olive accepts but that Olivine does not compute (``task: multilabel``, ``top_k`` > 1,
``average: none``, ``multidim_average: samplewise``, ``max_fpr``) are rejected rather than ignored.
``thresholds`` (AUROC binning) and ``validate_args`` are accepted; Olivine computes the exact AUROC.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from olivine.config.data import DataConfig
from olivine.config.evaluators import EvaluatorConfig, MetricConfig
from olivine.errors import ConfigError, ReferenceNotFoundError, UserScriptError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClassificationConfig(_Strict):
    """``accuracy_score``, ``f1_score``, ``precision``, ``recall`` (torchmetrics defaults)."""

    task: Literal["binary", "multiclass"] = "binary"
    threshold: float = 0.5
    num_classes: int | None = Field(None, ge=2)
    num_labels: int | None = None
    average: Literal["micro", "macro", "weighted"] = "micro"
    multidim_average: Literal["global"] = "global"
    top_k: Literal[1] = 1
    ignore_index: int | None = None
    validate_args: bool = True


class AurocConfig(_Strict):
    task: Literal["binary", "multiclass"] = "binary"
    thresholds: int | list[float] | None = None
    num_classes: int | None = Field(None, ge=2)
    num_labels: int | None = None
    average: Literal["macro", "weighted"] = "macro"
    max_fpr: None = None
    ignore_index: int | None = None
    validate_args: bool = True


class PerplexityConfig(_Strict):
    """torchmetrics' ``Perplexity``; Olive sets ``ignore_index`` to -100 (its padding label) when unset."""

    ignore_index: int | None = None


class LatencyConfig(_Strict):
    """Also used for throughput. ``sleep_num`` is seconds slept after each run (Olive's name)."""

    warmup_num: int = Field(10, ge=0)
    repeat_test_num: int = Field(20, ge=1)
    sleep_num: float = Field(0, ge=0)


class NoConfig(_Strict):
    pass


class HfComputeParams(_Strict):
    """``compute_params`` of evaluate's accuracy/f1/precision/recall that Olivine computes the same way."""

    average: Literal["binary", "micro", "macro", "weighted"] = "binary"
    pos_label: Literal[1] = 1
    normalize: Literal[True] = True


class HfMetricConfig(_Strict):
    """Olive's ``huggingface_metrics`` backend config: ``evaluate.load(name, **load_params)`` then
    ``compute(predictions, references, **compute_params)``, the value read at ``result_key``."""

    load_params: dict[str, Any] | None = None
    compute_params: HfComputeParams | None = None
    result_key: str | None = None


def config_model(metric_type: str, sub_type: str) -> type[BaseModel] | None:
    """The ``metric_config`` model of a sub-type; ``None`` for custom metrics (any mapping is accepted)."""
    if metric_type == "accuracy":
        if sub_type == "perplexity":
            return PerplexityConfig
        return AurocConfig if sub_type == "auroc" else ClassificationConfig
    if metric_type in ("latency", "throughput"):
        return LatencyConfig
    if metric_type == "size_on_disk":
        return NoConfig
    return None


def parse_metric_config(metric: MetricConfig, index: int) -> Any:
    """The validated ``metric_config`` of ``metric.sub_types[index]`` (defaults when it has none).

    Raises:
        ConfigError: with the key path below the metric, e.g. ``sub_types.0.metric_config.averag``.
    """
    sub = metric.sub_types[index]
    model = HfMetricConfig if metric.backend == "huggingface_metrics" else config_model(metric.type, sub.name)
    if model is None:
        return dict(sub.metric_config or {})
    try:
        return model.model_validate(sub.metric_config or {})
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in error["loc"])
        if error["type"] == "extra_forbidden":
            known = sorted(model.model_fields)
            match = difflib.get_close_matches(str(error["loc"][-1]), known, n=1)
            hint = f"; did you mean '{match[0]}'?" if match else ""
            message = f"unknown key{hint}; allowed: {', '.join(known) or 'none'}"
        else:
            message = f"{error['msg']} (got {error.get('input')!r})"
        raise ConfigError(message, path=f"sub_types.{index}.metric_config.{loc}") from None


def _check_hf_metric(config: HfMetricConfig, name: str, index: int) -> None:
    if config.load_params:
        raise ConfigError(
            "load_params (evaluate.load arguments) are not supported: Olivine computes the metric itself",
            path=f"sub_types.{index}.metric_config.load_params",
        )
    if config.result_key not in (None, name):
        raise ConfigError(
            f"the result of '{name}' has the single key '{name}'",
            path=f"sub_types.{index}.metric_config.result_key",
        )


def session_options_of(metric: MetricConfig) -> dict[str, Any] | None:
    """The onnxruntime session options ``metric`` sets in ``user_config.inference_settings.onnx``, as a
    dict without unset keys (None when it sets none)."""
    settings = metric.user_config.inference_settings if metric.user_config else None
    onnx_settings = settings.onnx if settings else None
    if onnx_settings and onnx_settings.session_options:
        return onnx_settings.session_options.model_dump(exclude_none=True)
    return None


def timing_config(metric: MetricConfig) -> LatencyConfig:
    """Olive's rule: the first sub-type that has a ``metric_config`` sets warmup / repeat / sleep."""
    for i, sub in enumerate(metric.sub_types):
        if sub.metric_config is not None:
            parsed: LatencyConfig = parse_metric_config(metric, i)
            return parsed
    return LatencyConfig()


def metric_data_config(metric: MetricConfig, data_configs: dict[str, DataConfig]) -> DataConfig | None:
    """The metric's data config: an inline one, or the one its name refers to."""
    if metric.data_config is None or isinstance(metric.data_config, DataConfig):
        return metric.data_config
    found = data_configs.get(metric.data_config)
    if found is None:
        known = ", ".join(sorted(data_configs)) or "none defined"
        raise ReferenceNotFoundError(
            f"no data config named '{metric.data_config}' (data configs: {known})", path="data_config"
        )
    return found


def validate_evaluator(
    evaluator: EvaluatorConfig,
    *,
    data_configs: dict[str, DataConfig],
    base_dir: Path,
    path: str = "evaluator",
) -> None:
    """Resolve-time checks of ``evaluator``; errors carry the full key path under ``path``.

    Checks every sub-metric's ``metric_config``, that referenced data configs exist (inline ones are
    validated), that accuracy and ``metric_func`` metrics have a data config, and that custom functions
    exist in their user scripts.
    """
    from olivine.data.components import validate_data_config
    from olivine.data.user_script import load_object

    for m_index, metric in enumerate(evaluator.metrics):
        where = f"{path}.metrics.{m_index}"
        try:
            for s_index in range(len(metric.sub_types)):
                parsed = parse_metric_config(metric, s_index)
                if isinstance(parsed, HfMetricConfig):
                    _check_hf_metric(parsed, metric.sub_types[s_index].name, s_index)
            dc = metric_data_config(metric, data_configs)
            if isinstance(metric.data_config, DataConfig):
                validate_data_config(metric.data_config, base_dir=base_dir, path="data_config")
            uc = metric.user_config
            needs_data = metric.type == "accuracy" or (
                metric.type == "custom" and uc and not uc.evaluate_func
            )
            if needs_data and dc is None:
                raise ConfigError(
                    f"{metric.type} metric '{metric.name}' needs a data_config", path="data_config"
                )
            if metric.type == "custom" and uc is not None:
                script = uc.user_script or evaluator.user_script
                script_dir = uc.script_dir or evaluator.script_dir
                name = uc.evaluate_func or uc.metric_func or ""
                try:
                    load_object(name, script, script_dir, base_dir=base_dir)
                except UserScriptError as exc:
                    owner = "user_config." if uc.user_script else ""
                    raise UserScriptError(exc.message, path=f"{owner}user_script") from None
                except ConfigError as exc:
                    func_key = "evaluate_func" if uc.evaluate_func else "metric_func"
                    raise ConfigError(exc.message, path=f"user_config.{func_key}") from None
        except ConfigError as exc:
            raise type(exc)(exc.message, path=f"{where}.{exc.path}" if exc.path else where) from None
