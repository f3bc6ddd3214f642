"""Evaluators and metrics (Olive's names). Goals and priorities are parsed and recorded here; the
maths lives in :mod:`olivine.evaluate.goals`."""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import field_validator, model_validator

from olivine.config.base import LocalPath, StrictModel
from olivine.config.data import DataConfig
from olivine.config.model import InferenceSettings

logger = logging.getLogger(__name__)

MetricType = Literal["accuracy", "latency", "throughput", "size_on_disk", "custom"]

#: ``perplexity`` ranks like every accuracy sub-type, higher is better unless the sub-type says
#: ``higher_is_better: false`` (Olive 0.13's default too, which only ``wer`` escapes).
SUB_TYPES: dict[str, tuple[str, ...]] = {
    "accuracy": ("accuracy_score", "f1_score", "precision", "recall", "auroc", "perplexity"),
    "latency": ("avg", "max", "min", "p50", "p75", "p90", "p95", "p99", "p999"),
    "throughput": ("avg", "max", "min", "p50", "p75", "p90", "p95", "p99", "p999"),
    "size_on_disk": ("bytes",),
}

#: Sub-types of ``backend: huggingface_metrics`` (Olive loads them with ``evaluate.load(name)``). The
#: evaluate package ships no metric (each is downloaded from the Hugging Face Hub), so Olivine computes
#: these four itself with scikit-learn's semantics, which evaluate's versions wrap.
HF_METRIC_SUB_TYPES = ("accuracy", "f1", "precision", "recall")

#: Olive 0.13's accuracy sub-types that Olivine does not compute (they score generated text), and what
#: they measure.
OLIVE_ONLY_ACCURACY = {
    "wer": "the word error rate of generated transcriptions",
    "rtfx": "the inverse real-time factor of speech recognition",
    "exact_match": "exact matches of generated answers (vision-vqa)",
    "relaxed_accuracy": "relaxed matches of generated answers (vision-chart-qa)",
    "word_sort_ratio": "word overlap of generated text (vision-ocr)",
}

#: Evaluator types of Olive that Olivine does not implement, and what they do.
UNSUPPORTED_EVALUATORS = {
    "lmevaluator": "LMEvaluator (lm-evaluation-harness tasks)",
    "mtebevaluator": "MTEBEvaluator (MTEB embedding benchmarks)",
}

# Whether a larger value is better, per metric type, when a sub-metric does not say.
DEFAULT_HIGHER_IS_BETTER = {
    "accuracy": True,
    "latency": False,
    "throughput": True,
    "size_on_disk": False,
    "custom": True,
}


class Goal(StrictModel):
    type: Literal[
        "threshold",
        "max-degradation",
        "min-improvement",
        "percent-max-degradation",
        "percent-min-improvement",
    ]
    value: float


class SubMetric(StrictModel):
    name: str
    metric_config: dict[str, Any] | None = None
    priority: int = -1
    higher_is_better: bool | None = None
    goal: Goal | None = None


class MetricInferenceSettings(StrictModel):
    """A metric's own inference settings, per framework (Olive's ``{"onnx": {...}}``)."""

    onnx: InferenceSettings | None = None
    pytorch: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _framework_keys(cls, value: Any) -> Any:
        """Olive reads a metric's settings per framework (``inference_settings.get("onnx")``) and ignores
        settings written directly under ``inference_settings``; so does Olivine, saying so."""
        if not isinstance(value, dict):
            return value
        settings = InferenceSettings.model_fields
        ignored = sorted(k for k in value if k not in cls.model_fields and k in settings)
        if not ignored:
            return value
        logger.warning(
            "metric user_config.inference_settings: %s ignored, as Olive ignores it: a metric's inference "
            "settings go under 'onnx' (inference_settings.onnx.%s)",
            ", ".join(ignored),
            ignored[0],
        )
        return {k: v for k, v in value.items() if k not in ignored}


class MetricUserConfig(StrictModel):
    user_script: LocalPath | None = None
    script_dir: LocalPath | None = None
    data_dir: LocalPath | None = None
    batch_size: int | None = None
    evaluate_func: str | None = None
    evaluate_func_kwargs: dict[str, Any] | None = None
    metric_func: str | None = None
    metric_func_kwargs: dict[str, Any] | None = None
    inference_settings: MetricInferenceSettings | None = None
    io_bind: bool = False
    #: Olive shares the KV-cache buffers between runs with io_bind on CUDA; nothing to share on the CPU.
    shared_kv_buffer: bool = False
    run_kwargs: dict[str, Any] | None = None

    @field_validator("run_kwargs")
    @classmethod
    def _run_kwargs(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        """Olive (0.7 to 0.13) hands ``run_kwargs`` to the model call: ``generate()`` of a Hugging Face
        model that has a generation config (a latency metric then times generation), ``forward()`` of a
        PyTorch model, onnxruntime's run (which takes only ``output_names`` / ``run_options``, and
        ignores both). Olivine times and scores one forward pass / session run, so it refuses them rather
        than measure something else than the config asks."""
        if value:
            raise ValueError(
                f"extra model-call arguments ({', '.join(sorted(value))}) are not supported by Olivine: "
                "Olive passes them to generate() of a Hugging Face model, forward() of a PyTorch model or "
                "onnxruntime's run; Olivine runs the model's forward pass / session as is (remove the key)"
            )
        return value


#: Metric keys of Olive after 0.13 (a JSONL log of the first N predictions beside their targets); Olive 0.13
#: folds them into ``user_config`` and ignores them.
_IGNORED_METRIC_KEYS = ("sample_log_num", "sample_log_dir")


class MetricConfig(StrictModel):
    name: str
    type: MetricType
    backend: Literal["torch_metrics", "huggingface_metrics"] | None = None
    sub_types: list[SubMetric]
    user_config: MetricUserConfig | None = None
    data_config: str | DataConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _fold_user_config(cls, value: Any) -> Any:
        """Olive folds metric-level keys that are not metric fields into ``user_config``."""
        if isinstance(value, str):
            raise ValueError(
                f"metric '{value}' is given by name: an evaluator's metrics are mappings (name, type, "
                "sub_types, ...), as Olive 0.13 requires too (it refuses a name)"
            )
        if not isinstance(value, dict):
            return value
        logged = [k for k in _IGNORED_METRIC_KEYS if k in value]
        if logged:
            logger.warning(
                "metric '%s': %s ignored: Olive's log of sample predictions (after Olive 0.13, which ignores "
                "the keys too) is not written by Olivine",
                value.get("name"),
                ", ".join(logged),
            )
            value = {k: v for k, v in value.items() if k not in logged}
        folded = {
            k: v for k, v in value.items() if k not in cls.model_fields and k in MetricUserConfig.model_fields
        }
        if not folded:
            return value
        out = {k: v for k, v in value.items() if k not in folded}
        user_config = dict(out.get("user_config") or {})
        for key, val in folded.items():
            if key in user_config:
                raise ValueError(f"'{key}' is given both at the metric level and under 'user_config'")
            user_config[key] = val
        out["user_config"] = user_config
        return out

    @model_validator(mode="after")
    def _check(self) -> MetricConfig:
        hf_backend = self.backend == "huggingface_metrics" and self.type == "accuracy"
        allowed = HF_METRIC_SUB_TYPES if hf_backend else SUB_TYPES.get(self.type)
        for sub in self.sub_types:
            if allowed is not None and sub.name not in allowed:
                if hf_backend:
                    raise ValueError(
                        f"metric '{self.name}': backend 'huggingface_metrics' sub-type '{sub.name}' is "
                        "not available: the evaluate package downloads its metrics from the Hugging Face "
                        f"Hub, which Olivine does not reach; Olivine computes {', '.join(allowed)}"
                    )
                if self.type == "accuracy" and sub.name in OLIVE_ONLY_ACCURACY:
                    raise ValueError(
                        f"metric '{self.name}': Olive's accuracy sub-type '{sub.name}' "
                        f"({OLIVE_ONLY_ACCURACY[sub.name]}) is not supported by Olivine; "
                        f"supported: {', '.join(allowed)}"
                    )
                raise ValueError(
                    f"metric '{self.name}': unknown {self.type} sub-type '{sub.name}'; "
                    f"allowed: {', '.join(allowed)}"
                )
            if sub.higher_is_better is None:
                sub.higher_is_better = DEFAULT_HIGHER_IS_BETTER[self.type]
        if self.type == "custom":
            uc = self.user_config
            if uc is None or not (uc.evaluate_func or uc.metric_func):
                raise ValueError(
                    f"custom metric '{self.name}' needs user_config.evaluate_func or user_config.metric_func"
                )
        if not self.sub_types:
            raise ValueError(f"metric '{self.name}' needs at least one entry in 'sub_types'")
        return self


class EvaluatorConfig(StrictModel):
    #: Olive accepts an evaluator without metrics (``{}``): it evaluates nothing.
    metrics: list[MetricConfig] = []
    user_script: LocalPath | None = None
    script_dir: LocalPath | None = None
    type: Literal["OliveEvaluator"] | None = None
    #: Olive's own field; informational (the evaluator's name is its key in ``evaluators``).
    name: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _known_type(cls, value: Any) -> Any:
        value = _drop_ignored_keys(value)
        kind = value.get("type") if isinstance(value, dict) else None
        if isinstance(kind, str) and kind.lower() in UNSUPPORTED_EVALUATORS:
            raise ValueError(
                f"evaluator type '{kind}': {UNSUPPORTED_EVALUATORS[kind.lower()]} is not supported by "
                "Olivine; use an evaluator with 'metrics' (type OliveEvaluator)"
            )
        if isinstance(kind, str) and kind.lower() == "oliveevaluator":
            return {**value, "type": "OliveEvaluator"}
        return value

    @model_validator(mode="after")
    def _priorities(self) -> EvaluatorConfig:
        subs = [sub for metric in self.metrics for sub in metric.sub_types]
        if len(subs) == 1 and subs[0].priority == -1:
            subs[0].priority = 1  # Olive: a lone sub-type is ranked
        ranked = sorted(sub.priority for sub in subs if sub.priority != -1)
        if ranked and ranked != list(range(1, len(ranked) + 1)):
            raise ValueError(
                f"ranked priorities must be 1..{len(ranked)} without gaps or repeats (got {ranked}); "
                "use -1 for report-only metrics"
            )
        names = [m.name for m in self.metrics]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"metric names must be unique; repeated: {', '.join(sorted(dup))}")
        return self


#: Evaluator keys Olive 0.13 accepts and ignores: it folds keys that are not its fields into ``type_args``,
#: the evaluator class's keyword arguments, which OliveEvaluator's classes swallow (``**kwargs``).
#: ``target`` is a pre-0.7 evaluator key (where to evaluate): the workflow's target decides that.
_IGNORED_EVALUATOR_KEYS = {
    "target": "the evaluation runs on the workflow's target",
    "type_args": "arguments of OliveEvaluator, which takes none",
}


def _drop_ignored_keys(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    ignored = [k for k in _IGNORED_EVALUATOR_KEYS if k in value]
    for key in ignored:
        logger.warning(
            "evaluator key '%s' ignored, as Olive 0.13 ignores it: %s", key, _IGNORED_EVALUATOR_KEYS[key]
        )
    return {k: v for k, v in value.items() if k not in ignored} if ignored else value
