"""Evaluators and metrics (Olive's names). Goals and priorities are parsed and recorded here; the
maths lives in :mod:`olivine.evaluate.goals`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import model_validator

from olivine.config.base import LocalPath, StrictModel
from olivine.config.data import DataConfig
from olivine.config.model import InferenceSettings

MetricType = Literal["accuracy", "latency", "throughput", "size_on_disk", "custom"]

SUB_TYPES: dict[str, tuple[str, ...]] = {
    "accuracy": ("accuracy_score", "f1_score", "precision", "recall", "auroc"),
    "latency": ("avg", "max", "min", "p50", "p75", "p90", "p95", "p99", "p999"),
    "throughput": ("avg", "max", "min", "p50", "p75", "p90", "p95", "p99", "p999"),
    "size_on_disk": ("bytes",),
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


class MetricConfig(StrictModel):
    name: str
    type: MetricType
    backend: Literal["torch_metrics", "huggingface_metrics"] | None = None
    sub_types: list[SubMetric]
    user_config: MetricUserConfig | None = None
    data_config: str | DataConfig | None = None

    @model_validator(mode="after")
    def _check(self) -> MetricConfig:
        allowed = SUB_TYPES.get(self.type)
        for sub in self.sub_types:
            if allowed is not None and sub.name not in allowed:
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
    metrics: list[MetricConfig]
    user_script: LocalPath | None = None
    script_dir: LocalPath | None = None

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
