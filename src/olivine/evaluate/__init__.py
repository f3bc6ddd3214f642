"""Evaluation: metric maths, goals, and running a model against an evaluator config.

Only light modules are imported here; onnxruntime and torch load when a model is run.
"""

from typing import TYPE_CHECKING, Any

from olivine.evaluate.goals import goal_value, resolve_goals
from olivine.evaluate.metric_configs import validate_evaluator
from olivine.evaluate.results import MetricValue, result_key, results_from_json, results_to_json

if TYPE_CHECKING:
    from olivine.evaluate.evaluator import EVALUATOR_VERSION, evaluate_model, evaluation_fingerprint
    from olivine.evaluate.inference import ModelOutput

#: Imported on first use: they need numpy, which validating a config (``olivine run``) does not.
_LAZY = {
    "EVALUATOR_VERSION": "olivine.evaluate.evaluator",
    "evaluate_model": "olivine.evaluate.evaluator",
    "evaluation_fingerprint": "olivine.evaluate.evaluator",
    "ModelOutput": "olivine.evaluate.inference",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'olivine.evaluate' has no attribute '{name}'")


__all__ = [
    "EVALUATOR_VERSION",
    "MetricValue",
    "ModelOutput",
    "evaluate_model",
    "evaluation_fingerprint",
    "goal_value",
    "resolve_goals",
    "result_key",
    "results_from_json",
    "results_to_json",
    "validate_evaluator",
]
