"""Evaluation: metric maths, goals, and running a model against an evaluator config.

Only light modules are imported here; onnxruntime and torch load when a model is run.
"""

from olivine.evaluate.evaluator import EVALUATOR_VERSION, evaluate_model, evaluation_fingerprint
from olivine.evaluate.goals import goal_value, resolve_goals
from olivine.evaluate.inference import ModelOutput
from olivine.evaluate.metric_configs import validate_evaluator
from olivine.evaluate.results import MetricValue, result_key, results_from_json, results_to_json

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
