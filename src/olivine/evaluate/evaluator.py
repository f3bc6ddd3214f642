"""Evaluate a model against an evaluator config: accuracy, latency, throughput, size on disk, custom.

Results are Olive's flat mapping ``"<metric>-<sub_type>" -> MetricValue``. ONNX models run on onnxruntime,
PyTorch / Hugging Face models on PyTorch, both through :func:`olivine.model.runner.open_runner`.

Custom metrics call the user's functions the way Olive does:
``evaluate_func(model, device, execution_providers, **evaluate_func_kwargs)`` gets the
:class:`~olivine.model.handle.ModelHandle`, the device string and the list of execution providers;
``metric_func(model_output, targets, **metric_func_kwargs)`` gets a :class:`ModelOutput` (``.preds``,
``.logits``) and the targets as numpy arrays. Either returns a number (one sub-type) or a mapping
sub-type -> number.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import numbers
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np

from olivine.config.data import DataConfig
from olivine.config.evaluators import EvaluatorConfig, MetricConfig
from olivine.data.paths import content_fingerprint, content_hash
from olivine.data.pipeline import build_dataloader, post_processor
from olivine.data.user_script import load_object, resolve_path
from olivine.errors import EvaluationError, UserInputError
from olivine.evaluate import metrics as m
from olivine.evaluate.default_data import latency_data_config
from olivine.evaluate.inference import ModelOutput, run_for_predictions, samples_per_run, time_rounds
from olivine.evaluate.metric_configs import (
    metric_data_config,
    parse_metric_config,
    session_options_of,
    timing_config,
)
from olivine.evaluate.results import MetricValue, metric_value, result_key
from olivine.model.accelerator import Accelerator
from olivine.model.handle import ModelHandle
from olivine.model.runner import Runner, open_runner

#: Bump when a metric's computation changes, so cached evaluations are not reused.
#: 2: timed metrics carry per-round medians and their spread; 3: the spread leaves out the farthest round.
EVALUATOR_VERSION = "3"

#: Timed metrics are measured in this many rounds (fewer when there are fewer runs); the spread of the
#: rounds' medians is what tells two candidates apart (see olivine.search.ranking).
TIMING_ROUNDS = 5

_CLASSIFICATION = {
    "accuracy_score": m.accuracy_score,
    "f1_score": m.f1_score,
    "precision": m.precision,
    "recall": m.recall,
}


class _Session:
    """What one :func:`evaluate_model` call shares between metrics: the model and its runners."""

    def __init__(
        self,
        model: ModelHandle,
        evaluator: EvaluatorConfig,
        data_configs: dict[str, DataConfig],
        accelerator: Accelerator,
        tokenizer_path: str | None,
        base_dir: Path | None,
        input_model: ModelHandle | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.model = model
        self.progress = progress
        #: metric name -> the median of each timing round (ms for latency, samples/s for throughput)
        self.rounds: dict[str, tuple[float, ...]] = {}
        self.input_model = input_model
        self.evaluator = evaluator
        self.data_configs = data_configs
        self.accelerator = accelerator
        self.tokenizer_path = tokenizer_path
        self.base_dir = base_dir
        self._runners: dict[str, Runner] = {}

    def runner(self, metric: MetricConfig) -> Runner:
        """A runner for ``metric`` (shared unless the metric sets its own onnxruntime session options)."""
        session_options = session_options_of(metric)
        key = json.dumps(session_options, sort_keys=True, default=str)
        if key not in self._runners:
            self._runners[key] = open_runner(self.model, self.accelerator, session_options=session_options)
        return self._runners[key]

    def data(self, metric: MetricConfig, *, for_timing: bool = False) -> DataConfig:
        dc = metric_data_config(metric, self.data_configs)
        if dc is None and for_timing:
            dc = latency_data_config(self.model)
        if dc is None:
            raise EvaluationError(f"{metric.type} metric '{metric.name}' needs a data_config")
        return dc

    def loader(self, dc: DataConfig) -> Any:
        return build_dataloader(
            dc, model=self.model, tokenizer_path=self.tokenizer_path, base_dir=self.base_dir
        )

    def predictions(self, metric: MetricConfig) -> tuple[ModelOutput, np.ndarray]:
        dc = self.data(metric)
        post = post_processor(dc, base_dir=self.base_dir)
        return run_for_predictions(self.runner(metric), self.loader(dc), post)


def evaluate_model(
    model: ModelHandle,
    evaluator: EvaluatorConfig,
    *,
    data_configs: dict[str, DataConfig],
    accelerator: Accelerator,
    tokenizer_path: str | None = None,
    base_dir: Path | None = None,
    input_model: ModelHandle | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, MetricValue]:
    """Compute every metric of ``evaluator`` on ``model``.

    Args:
        model: the model to evaluate.
        evaluator: the evaluator config (metrics, and a user script for custom metrics).
        data_configs: the workflow's data configs by name (metrics refer to them by name).
        accelerator: device and execution providers to run on.
        tokenizer_path: local tokenizer folder for Hugging Face pre-processing.
        base_dir: the folder relative paths are relative to (the config file's folder).
        input_model: the workflow's input model, offered to custom functions that take ``input_model``.
        progress: called with what is being measured (a metric, a timing round), so a long evaluation
            is never silent.

    Returns:
        ``"<metric>-<sub_type>"`` -> :class:`MetricValue`, in config order.

    Raises:
        EvaluationError: a metric could not be computed; the message names the metric.
        UserInputError: the configuration is invalid (normally caught at resolve time).
    """
    session = _Session(
        model, evaluator, data_configs, accelerator, tokenizer_path, base_dir, input_model, progress
    )
    results: dict[str, MetricValue] = {}
    for metric in evaluator.metrics:
        if progress is not None:
            progress(f"{metric.name} ({metric.type})")
        try:
            values = _EVALUATE[metric.type](session, metric)
        except UserInputError:
            raise
        except Exception as exc:  # runners, data and user code raise many types; name the metric
            detail = str(exc) if isinstance(exc, EvaluationError) else f"{type(exc).__name__}: {exc}"
            raise EvaluationError(f"metric '{metric.name}' ({metric.type}): {detail}") from exc
        rounds = session.rounds.get(metric.name)
        for sub in metric.sub_types:
            results[result_key(metric.name, sub.name)] = metric_value(sub, values[sub.name], rounds)
    return results


def _accuracy(session: _Session, metric: MetricConfig) -> dict[str, float]:
    if metric.backend == "huggingface_metrics":
        return _hf_metrics(session, metric)
    output, targets = session.predictions(metric)
    preds, logits = _primary(output.preds), _primary(output.logits)
    values: dict[str, float] = {}
    for i, sub in enumerate(metric.sub_types):
        cfg = parse_metric_config(metric, i)
        if sub.name == "perplexity":
            ignore = -100 if cfg.ignore_index is None else cfg.ignore_index
            values[sub.name] = m.perplexity(logits, targets, ignore_index=ignore)
        elif sub.name == "auroc":
            values[sub.name] = m.auroc(
                logits,
                targets,
                task=cfg.task,
                num_classes=cfg.num_classes,
                average=cfg.average,
                ignore_index=cfg.ignore_index,
            )
        else:
            values[sub.name] = _CLASSIFICATION[sub.name](
                preds,
                targets,
                task=cfg.task,
                num_classes=cfg.num_classes,
                average=cfg.average,
                threshold=cfg.threshold,
                ignore_index=cfg.ignore_index,
            )
    return values


def _hf_metrics(session: _Session, metric: MetricConfig) -> dict[str, float]:
    """evaluate's accuracy / f1 / precision / recall (scikit-learn's), on the predictions as Olive passes
    them (``predictions=model_output[0]``)."""
    output, targets = session.predictions(metric)
    preds = m.to_labels(_primary(output.preds), "multiclass")
    values: dict[str, float] = {}
    for i, sub in enumerate(metric.sub_types):
        cfg = parse_metric_config(metric, i)
        average = cfg.compute_params.average if cfg.compute_params else "binary"
        if sub.name == "accuracy":
            values[sub.name] = m.accuracy_score(preds, targets, task="multiclass", average="micro")
        elif average == "binary":
            values[sub.name] = _CLASSIFICATION[f"{sub.name}_score" if sub.name == "f1" else sub.name](
                preds, targets, task="binary"
            )
        else:
            func = _CLASSIFICATION[f"{sub.name}_score" if sub.name == "f1" else sub.name]
            values[sub.name] = func(preds, targets, task="multiclass", average=cast(m.Average, average))
    return values


def _primary(value: Any) -> Any:
    """The output metrics use when a model has several: ``logits`` if present, else the first."""
    if isinstance(value, dict):
        return value.get("logits", next(iter(value.values())))
    return value


def _timed(session: _Session, metric: MetricConfig) -> tuple[list[list[float]], int]:
    timing = timing_config(metric)
    loader = session.loader(session.data(metric, for_timing=True))
    inputs, _ = loader.first_batch()

    def on_round(index: int, total: int) -> None:
        if session.progress is not None:
            session.progress(f"{metric.name} ({metric.type}) round {index}/{total}")

    latencies = time_rounds(
        session.runner(metric),
        inputs,
        warmup_num=timing.warmup_num,
        repeat_test_num=timing.repeat_test_num,
        sleep_s=timing.sleep_num,
        rounds=TIMING_ROUNDS,
        on_round=on_round,
    )
    return latencies, samples_per_run(inputs, loader.batch_size)


def _round_medians_ms(rounds: list[list[float]]) -> tuple[float, ...]:
    return tuple(round(float(np.median(r)) * 1000.0, 5) for r in rounds if r)


def _latency(session: _Session, metric: MetricConfig) -> dict[str, float]:
    rounds, _ = _timed(session, metric)
    session.rounds[metric.name] = _round_medians_ms(rounds)
    return m.latency_stats([x for r in rounds for x in r])


def _throughput(session: _Session, metric: MetricConfig) -> dict[str, float]:
    rounds, samples = _timed(session, metric)
    medians = _round_medians_ms(rounds)
    session.rounds[metric.name] = tuple(round(samples / ms * 1000.0, 5) for ms in medians if ms > 0)
    return m.throughput_stats([x for r in rounds for x in r], samples)


def _size_on_disk(session: _Session, metric: MetricConfig) -> dict[str, float]:
    return {"bytes": float(session.model.size_on_disk())}


def _custom(session: _Session, metric: MetricConfig) -> dict[str, float]:
    uc = metric.user_config
    assert uc is not None  # the config model requires it for custom metrics
    script = uc.user_script or session.evaluator.user_script
    script_dir = uc.script_dir or session.evaluator.script_dir
    if uc.evaluate_func:
        func = load_object(uc.evaluate_func, script, script_dir, base_dir=session.base_dir)
        acc = session.accelerator
        kwargs = {**_context_kwargs(func, session, metric), **(uc.evaluate_func_kwargs or {})}
        raw = func(session.model, acc.device, list(acc.execution_providers), **kwargs)
    else:
        func = load_object(str(uc.metric_func), script, script_dir, base_dir=session.base_dir)
        output, targets = session.predictions(metric)
        raw = func(output, targets, **(uc.metric_func_kwargs or {}))
    return _custom_values(metric, raw)


def _context_kwargs(func: Callable[..., Any], session: _Session, metric: MetricConfig) -> dict[str, Any]:
    """Olivine's additions to Olive's ``evaluate_func`` call, passed only to a function that names them:
    ``data_dir`` (the metric's ``user_config.data_dir``, bundled with remote workflows) and
    ``input_model`` (the workflow's input model handle, e.g. to compute reference outputs)."""
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return {}
    offered: dict[str, Any] = {"input_model": session.input_model}
    if metric.user_config is not None and metric.user_config.data_dir is not None:
        offered["data_dir"] = metric.user_config.data_dir
    return {k: v for k, v in offered.items() if k in params and v is not None}


def _custom_values(metric: MetricConfig, raw: Any) -> dict[str, float]:
    names = [sub.name for sub in metric.sub_types]
    if isinstance(raw, numbers.Real) or (isinstance(raw, np.ndarray) and raw.size == 1):
        if len(names) != 1:
            raise EvaluationError(
                f"the function returned one number but the metric has sub-types {names}; return a mapping"
            )
        return {names[0]: float(raw)}
    if isinstance(raw, dict):
        missing = [n for n in names if n not in raw]
        if missing:
            raise EvaluationError(f"the function's result has no {missing} (it has {sorted(map(str, raw))})")
        return {n: _number(raw[n], n) for n in names}
    raise EvaluationError(f"the function returned {type(raw).__name__}; expected a number or a mapping")


def _number(value: Any, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise EvaluationError(f"sub-type '{name}' is {type(value).__name__}, not a number") from exc


_EVALUATE: dict[str, Callable[[_Session, MetricConfig], dict[str, float]]] = {
    "accuracy": _accuracy,
    "latency": _latency,
    "throughput": _throughput,
    "size_on_disk": _size_on_disk,
    "custom": _custom,
}


def evaluation_fingerprint(
    evaluator: EvaluatorConfig, data_configs: dict[str, DataConfig], *, base_dir: Path | None = None
) -> str:
    """sha256 identifying what :func:`evaluate_model` computes (for cache keys), independent of where the
    files live: canonical metric configs, the content fingerprint of each data config a metric uses, the
    content of every user script (and the ``.py`` files of its ``script_dir``), and the evaluator version.
    """
    metrics = []
    for metric in evaluator.metrics:
        dumped = metric.model_dump(mode="json", exclude={"data_config", "user_config"})
        dc = metric_data_config(metric, data_configs)
        dumped["data"] = content_fingerprint(dc, base_dir=base_dir) if dc is not None else None
        if metric.user_config is not None:
            uc = metric.user_config.model_dump(mode="json")
            for key in ("user_script", "script_dir", "data_dir"):
                if uc.get(key):
                    uc[key] = content_hash(resolve_path(uc[key], base_dir), code_only=key == "script_dir")
            dumped["user_config"] = uc
        metrics.append(dumped)
    scripts = {
        key: content_hash(resolve_path(value, base_dir), code_only=key == "script_dir")
        for key, value in (("user_script", evaluator.user_script), ("script_dir", evaluator.script_dir))
        if value
    }
    payload = {"version": EVALUATOR_VERSION, "metrics": metrics, "scripts": scripts}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
