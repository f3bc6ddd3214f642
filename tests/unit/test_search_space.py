"""The search space built at resolve time, its numbering (Olive's), and the samplers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from olivine.config.loader import validate_config
from olivine.engine.resolve import ResolvedWorkflow, resolve
from olivine.errors import ConfigError
from olivine.model.accelerator import Accelerator
from olivine.passes.base import PASSES
from olivine.search.samplers import SAMPLERS
from olivine.search.samplers.base import SamplerSettings
from olivine.search.space import Dimension, PassOption, PassSlot, SearchSpace

EVALUATOR = {"e": {"metrics": [{"name": "size", "type": "size_on_disk", "sub_types": [{"name": "bytes"}]}]}}


def _workflow(tmp_path: Path, passes: dict[str, Any], search: Any = True, **engine: Any) -> ResolvedWorkflow:
    (tmp_path / "model.onnx").write_bytes(b"")
    data = {
        "input_model": {"type": "ONNXModel", "model_path": str(tmp_path / "model.onnx")},
        "evaluators": EVALUATOR,
        "passes": passes,
        "engine": {"evaluator": "e", "search_strategy": search, **engine},
    }
    return resolve(validate_config(data), config_path=None, base_dir=tmp_path)


def _slot(name: str, *dims: tuple[str, tuple[Any, ...]]) -> PassSlot:
    cls = PASSES.get("OnnxDynamicQuantization")
    return PassSlot(
        name, (PassOption("OnnxDynamicQuantization", cls, {}, tuple(Dimension(p, c) for p, c in dims)),)
    )


def test_space_numbers_points_as_olive_does_first_dimension_fastest() -> None:
    # Olive's SearchSpace docstring: A [a], B [b, c], C [d, e, f] -> index 1 is (a, c, d), 2 is (a, b, e).
    space = SearchSpace([_slot("q", ("per_channel", (True, False)), ("precision", ("int8", "uint8", "x")))])
    assert len(space) == 6
    values = [dict(space.point(i).choices[0].values) for i in range(6)]
    assert values[1] == {"per_channel": False, "precision": "int8"}
    assert values[2] == {"per_channel": True, "precision": "uint8"}
    for i in range(6):
        assert space.index_of(space.point(i).choices) == i
    two = SearchSpace(
        [_slot("a", ("per_channel", (True, False))), _slot("b", ("reduce_range", (True, False)))]
    )
    assert space.describe(space.point(3)) == {"q.per_channel": False, "q.precision": "uint8"}
    assert [two.describe(two.point(i))["a.per_channel"] for i in range(4)] == [True, False, True, False]


def test_searchable_values_expand_to_the_pass_declared_values_only_under_search(tmp_path: Path) -> None:
    passes = {"q": {"type": "OnnxDynamicQuantization", "per_channel": "SEARCHABLE_VALUES"}}
    searched = _workflow(tmp_path, passes, {"include_pass_params": False})
    (option,) = searched.slots[0].options
    assert option.dims == (Dimension("per_channel", (True, False)),)
    plain = _workflow(tmp_path, passes, None)
    assert plain.slots[0].options[0].dims == () and plain.passes[0].config.per_channel is False  # type: ignore[attr-defined]


def test_search_includes_unset_searchable_params_like_olive_unless_told_not_to(tmp_path: Path) -> None:
    passes = {"q": {"type": "OnnxDynamicQuantization", "per_channel": True}}
    option = _workflow(tmp_path, passes).slots[0].options[0]
    assert [d.param for d in option.dims] == ["precision", "reduce_range", "quant_preprocess"]
    assert len(SearchSpace(_workflow(tmp_path, passes).slots)) == 8
    disabled = {"q": {"type": "OnnxDynamicQuantization", "per_channel": True, "disable_search": True}}
    assert _workflow(tmp_path, disabled).slots[0].options[0].dims == ()


def test_explicit_choices_lists_and_olive_categorical_and_alternatives(tmp_path: Path) -> None:
    passes = {
        "q": [
            {
                "type": "OnnxDynamicQuantization",
                "precision": ["uint8", "int8"],
                "op_types_to_quantize": ["MatMul"],  # a list-valued parameter stays a value
                "nodes_to_exclude": {
                    "olive_parameter_type": "SearchParameter",
                    "type": "Categorical",
                    "support": [None, ["n1"]],
                },
            },
            {"type": "OnnxDynamicQuantization", "per_channel": True},
        ]
    }
    workflow = _workflow(tmp_path, passes, {"include_pass_params": False})
    first, second = workflow.slots[0].options
    assert first.dims == (
        Dimension("precision", ("uint8", "int8")),
        Dimension("nodes_to_exclude", (None, ["n1"])),
    )
    assert first.fixed["op_types_to_quantize"] == ["MatMul"] and second.dims == ()
    space = SearchSpace(workflow.slots)
    assert len(space) == 5
    assert space.describe(space.point(4)) == {"q": 1}


@pytest.mark.parametrize(
    ("passes", "search", "message", "path"),
    [
        ({"q": [{"type": "OnnxDynamicQuantization"}] * 2}, None, "needs search", "passes.q"),
        (
            {"q": {"type": "OnnxDynamicQuantization", "precision": ["int8", "uint8"]}},
            None,
            "has no search (Olive refuses a list here too): give one value",
            "passes.q.precision",
        ),
        (
            {"q": {"type": "OnnxDynamicQuantization", "size_threshold": "SEARCHABLE_VALUES"}},
            True,
            "no search values",
            "passes.q.size_threshold",
        ),
        (
            {"q": {"type": "OnnxDynamicQuantization", "precision": ["int9", "int8"]}},
            True,
            "each item a valid value",
            "passes.q.precision",
        ),
        ({"q": []}, True, "an empty list of alternative passes", "passes.q"),
        ({"q": [{"type": "OnnxDynamicQuantization"}, "x"]}, True, "Input should be a mapping", "passes.q.1"),
        (
            {
                "q": {
                    "type": "OnnxDynamicQuantization",
                    "per_channel": {
                        "olive_parameter_type": "SearchParameter",
                        "type": "Categorical",
                        "support": [],
                    },
                }
            },
            True,
            "at least one value in 'support'",
            "passes.q.per_channel",
        ),
    ],
)
def test_bad_search_configs_name_the_key(
    tmp_path: Path, passes: Any, search: Any, message: str, path: str
) -> None:
    with pytest.raises(ConfigError) as info:
        _workflow(tmp_path, passes, search)
    assert message in str(info.value) and path in str(info.value)


def test_search_without_an_evaluator_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"")
    data = {
        "input_model": {"type": "ONNXModel", "model_path": str(tmp_path / "model.onnx")},
        "passes": {"q": {"type": "OnnxDynamicQuantization"}},
        "engine": {"search_strategy": True},
    }
    with pytest.raises(ConfigError, match=r"engine\.search_strategy"):
        resolve(validate_config(data), config_path=None, base_dir=tmp_path)


def test_invalid_combination_gives_a_reason_instead_of_a_step(tmp_path: Path) -> None:
    passes = {
        "q": {
            "type": "OnnxDynamicQuantization",
            "precision": "int8",
            "weight_type": {
                "olive_parameter_type": "SearchParameter",
                "type": "Categorical",
                "support": ["QInt8", "QUInt8"],
            },
        }
    }
    space = SearchSpace(_workflow(tmp_path, passes, {"include_pass_params": False}).slots)
    assert not isinstance(space.steps(space.point(0), Accelerator()), str)
    reason = space.steps(space.point(1), Accelerator())
    assert isinstance(reason, str) and "disagree" in reason and reason.startswith("passes.q")


def test_search_strategy_accepts_olive_spellings() -> None:
    from olivine.config.engine import EngineConfig

    nested = EngineConfig.model_validate(
        {"search_strategy": {"sampler": "TPE", "sampler_config": {"seed": 7, "max_samples": 3}}}
    )
    assert nested.search is not None and (
        nested.search.sampler,
        nested.search.seed,
        nested.search.max_samples,
    ) == ("tpe", 7, 3)
    default = EngineConfig.model_validate({"search_strategy": True}).search
    assert default is not None and (default.execution_order, default.sampler) == ("joint", "sequential")
    assert EngineConfig.model_validate({"search_strategy": False}).search is None
    with pytest.raises(ValueError, match="unknown sampler 'grid'"):
        EngineConfig.model_validate({"search_strategy": {"sampler": "grid"}})


def _proposals(name: str, space: SearchSpace, seed: int = 1, max_samples: int = 0) -> list[int]:
    sampler = SAMPLERS.get(name)(space, SamplerSettings(max_samples=max_samples, seed=seed), [False])
    out = []
    while (point := sampler.suggest()) is not None:
        out.append(point.index)
        sampler.tell(point, [float(point.index % 3)])
    return out


@pytest.mark.parametrize("name", ["sequential", "random", "tpe"])
def test_samplers_propose_distinct_points_reproducibly_up_to_max_samples(name: str) -> None:
    space = SearchSpace([_slot("q", ("per_channel", (True, False)), ("precision", ("int8", "uint8", "x")))])
    every = _proposals(name, space)
    assert sorted(every) == list(range(6))
    assert _proposals(name, space) == every
    assert _proposals(name, space, max_samples=4) == every[:4] or name == "tpe"
    assert len(set(_proposals(name, space, max_samples=4))) == 4
    if name == "sequential":
        assert every == list(range(6))


def test_random_sampler_draws_as_olive_for_a_seed() -> None:
    import random

    space = SearchSpace([_slot("q", ("per_channel", (True, False)), ("precision", ("int8", "uint8", "x")))])
    rng, available, expected = random.Random(5), list(range(6)), []
    while available:
        expected.append(available.pop(rng.randrange(len(available))))
    assert _proposals("random", space, seed=5) == expected
    assert _proposals("random", space, seed=6) != expected


STATIC = {"type": "OnnxStaticQuantization", "data_config": "calib"}


def _calibrated_workflow(tmp_path: Path, entry: dict[str, Any], strategy: dict[str, Any]) -> ResolvedWorkflow:
    """Pass ``q`` (``entry``) over an ONNX file, with a dummy calibration data config ``calib``."""
    (tmp_path / "model.onnx").write_bytes(b"")
    data = {
        "input_model": {"type": "ONNXModel", "model_path": str(tmp_path / "model.onnx")},
        "data_configs": [
            {
                "name": "calib",
                "type": "DummyDataContainer",
                "load_dataset_config": {"input_names": ["x"], "input_shapes": [[1, 4]]},
            }
        ],
        "evaluators": EVALUATOR,
        "passes": {"q": entry},
        "engine": {"evaluator": "e", "search_strategy": strategy},
    }
    return resolve(validate_config(data), config_path=None, base_dir=tmp_path)


def _static_workflow(tmp_path: Path, quant: dict[str, Any], strategy: dict[str, Any]) -> ResolvedWorkflow:
    return _calibrated_workflow(tmp_path, {**STATIC, **quant}, strategy)


def _static_points(workflow: ResolvedWorkflow) -> list[tuple[str, str, str] | str]:
    space = SearchSpace(workflow.slots)
    out: list[tuple[str, str, str] | str] = []
    for i in range(len(space)):
        steps = space.steps(space.point(i), Accelerator())
        if isinstance(steps, str):
            out.append(steps)
        else:
            cfg = steps[0].config
            out.append((cfg.quant_format, cfg.precision, cfg.activation_type))  # type: ignore[attr-defined]
    return out


def test_static_activation_type_follows_olives_conditional_search_values(tmp_path: Path) -> None:
    quant = {k: "SEARCHABLE_VALUES" for k in ("quant_format", "precision", "activation_type")}
    points = _static_points(_static_workflow(tmp_path, quant, {"include_pass_params": False}))
    # Olive's joint space: (QDQ, int8, int8), (QDQ, uint8, uint8), (QOperator, uint8, uint8); the
    # conditional adds no dimension (2 x 2 points), and QOperator with int8 weights is its invalid choice.
    assert len(points) == 4
    assert sorted(p for p in points if isinstance(p, tuple)) == [
        ("QDQ", "int8", "int8"),
        ("QDQ", "uint8", "uint8"),
        ("QOperator", "uint8", "uint8"),
    ]
    (invalid,) = [p for p in points if isinstance(p, str)]
    assert "activation_type has no valid search value for quant_format=QOperator, precision=int8" in invalid
    # Left unset under include_pass_params, activation_type follows the same condition (as in Olive).
    unset = _static_points(
        _static_workflow(
            tmp_path,
            {"quant_format": "SEARCHABLE_VALUES", "precision": "uint8"},
            {"include_pass_params": True, "max_samples": 0},
        )
    )
    assert {p[2] for p in unset if isinstance(p, tuple)} == {"uint8"}


def test_olive_08_weight_type_is_searched_as_precision_without_a_second_precision_dimension(
    tmp_path: Path,
) -> None:
    # Olive <= 0.8 declared weight_type's search values (QInt8, QUInt8); the config model reads each as
    # precision, activation_type's condition follows it, and include_pass_params adds no precision.
    legacy = {k: "SEARCHABLE_VALUES" for k in ("quant_format", "weight_type", "activation_type")}
    workflow = _static_workflow(tmp_path, legacy, {"include_pass_params": True, "max_samples": 0})
    (option,) = workflow.slots[0].options
    params = [d.param for d in option.dims]
    assert "weight_type" in params and "precision" not in params
    points = _static_points(_static_workflow(tmp_path, legacy, {"include_pass_params": False}))
    assert sorted(p for p in points if isinstance(p, tuple)) == [
        ("QDQ", "int8", "int8"),
        ("QDQ", "uint8", "uint8"),
        ("QOperator", "uint8", "uint8"),
    ]
    listed = {
        "weight_type": ["QUInt8", "QInt8"],
        "quant_format": "QDQ",
        "activation_type": "SEARCHABLE_VALUES",
    }
    assert sorted(_static_points(_static_workflow(tmp_path, listed, {"include_pass_params": False}))) == [
        ("QDQ", "int8", "int8"),
        ("QDQ", "uint8", "uint8"),
    ]


def test_int8_activations_with_uint8_weights_are_skipped_with_onnxruntimes_reason(tmp_path: Path) -> None:
    # onnxruntime's check_static_quant_arguments refuses this pair in both formats: search skips it with
    # the reason instead of recording onnxruntime's error as a failed run.
    quant = {"precision": ["int8", "uint8"], "activation_type": "int8", "quant_format": "QDQ"}
    points = _static_points(_static_workflow(tmp_path, quant, {"include_pass_params": False}))
    assert ("QDQ", "int8", "int8") in points
    (reason,) = [p for p in points if isinstance(p, str)]
    assert "int8 activations with uint8 weights" in reason and reason.startswith("passes.q")


def test_a_list_for_a_parameter_without_search_values_says_how_to_search_it(tmp_path: Path) -> None:
    passes = {"q": {"type": "OnnxBlockWiseRtnQuantization", "block_size": [32, 64]}}
    with pytest.raises(ConfigError) as info:
        _workflow(tmp_path, passes)
    text = str(info.value)
    assert "passes.q.block_size" in text and "valid integer" in text
    assert "OnnxBlockWiseRtnQuantization declares searchable (none)" in text and "SearchParameter" in text


def test_explicit_activation_type_choices_are_not_conditional(tmp_path: Path) -> None:
    # A list given by the user is Olive's Categorical: every combination runs, S8S8 QOperator included.
    quant = {"quant_format": "SEARCHABLE_VALUES", "precision": "int8", "activation_type": ["int8", "uint8"]}
    points = _static_points(_static_workflow(tmp_path, quant, {"include_pass_params": False}))
    assert sorted(points) == [  # type: ignore[type-var]
        ("QDQ", "int8", "int8"),
        ("QDQ", "int8", "uint8"),
        ("QOperator", "int8", "int8"),
        ("QOperator", "int8", "uint8"),
    ]


def test_combined_quantization_ignores_activation_type_in_dynamic_mode(tmp_path: Path) -> None:
    entry = {
        "type": "OnnxQuantization",
        "data_config": "calib",
        "quant_mode": "SEARCHABLE_VALUES",
        "quant_format": "QOperator",
        "precision": "int8",
        "activation_type": "SEARCHABLE_VALUES",
    }
    space = SearchSpace(_calibrated_workflow(tmp_path, entry, {"include_pass_params": False}).slots)
    outcomes = [space.steps(space.point(i), Accelerator()) for i in range(len(space))]
    dynamic, static = outcomes
    assert not isinstance(dynamic, str) and dynamic[0].config.quant_mode == "dynamic"  # type: ignore[attr-defined]
    assert isinstance(static, str) and "quant_format=QOperator, precision=int8" in static


def test_combined_quantization_search_repeats_one_dynamic_run_per_dynamic_setting(tmp_path: Path) -> None:
    """Olive's OnnxQuantization search: the static parameters (calibrate_method, quant_format, ...) are
    ignored in dynamic mode, so the dynamic points keyed by them are one run each (a cache hit after the
    first), and quant_mode varies fastest (Olive declares it first)."""
    entry = {"type": "OnnxQuantization", "data_config": "calib"}
    space = SearchSpace(_calibrated_workflow(tmp_path, entry, {"include_pass_params": True}).slots)
    (option,) = space.slots[0].options
    assert option.dims[0].param == "quant_mode"
    steps = [space.steps(space.point(i), Accelerator()) for i in range(len(space))]
    assert [option.values_at(i)["quant_mode"] for i in range(4)] == ["dynamic", "static"] * 2
    dynamic = [json.dumps(s[0].canonical_config(), sort_keys=True) for s in steps if not isinstance(s, str)]
    dynamic = [d for d in dynamic if '"quant_mode": "dynamic"' in d]
    # precision x per_channel x reduce_range x quant_preprocess: 16 settings, each repeated for the 6
    # calibrate_method x quant_format points.
    assert len(dynamic) == 96 and len(set(dynamic)) == 16
    assert all('"calibrate_method": "MinMax"' in d and '"data_config": null' in d for d in dynamic)


def test_null_for_a_parameter_is_searched_as_if_unset_and_a_true_switch_is_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    passes = {"q": {"type": "OnnxDynamicQuantization", "per_channel": None, "quant_preprocess": None}}
    with caplog.at_level("WARNING", logger="olivine.engine.resolve"):
        (option,) = _workflow(tmp_path, passes, {"include_pass_params": True}).slots[0].options
    assert {"per_channel", "quant_preprocess"} <= {d.param for d in option.dims}
    assert "per_channel" not in option.fixed and "quant_preprocess" not in option.fixed
    assert [r.getMessage() for r in caplog.records] == [
        "passes.q.quant_preprocess: null is taken as not given (its default, true); Olive reads it as "
        "false, so write false to turn it off"
    ]


def test_static_parameters_of_a_dynamic_combined_quantization_are_named_and_not_searched(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    passes = {
        "q": {
            "type": "OnnxQuantization",
            "quant_mode": "dynamic",
            "calibrate_method": "SEARCHABLE_VALUES",
            "quant_format": "QOperator",
        }
    }
    with caplog.at_level("WARNING", logger="olivine.engine.resolve"):
        (option,) = _workflow(tmp_path, passes, {"include_pass_params": True}).slots[0].options
    params = {d.param for d in option.dims}
    assert "per_channel" in params and not params & {"calibrate_method", "quant_format", "activation_type"}
    assert [r.getMessage() for r in caplog.records] == [
        "passes.q: quant_mode dynamic does not calibrate: calibrate_method, quant_format not used"
    ]


def test_dry_run_plan_gives_the_space_size_and_the_sample_limit(tmp_path: Path) -> None:
    from olivine.cli.render import local_plan

    passes = {"q": {"type": "OnnxDynamicQuantization", "per_channel": "SEARCHABLE_VALUES"}}
    workflow = _workflow(tmp_path, passes, {"include_pass_params": False, "max_samples": 1})
    plan = local_plan(workflow, tmp_path / "cache", tmp_path / "out")
    assert "searching per_channel" in plan
    assert "sequential sampler, joint order, seed 1; 2 point(s) in the space, max_samples 1" in plan


def test_a_list_for_a_tuning_list_parameter_is_tried_in_the_pass_without_search(tmp_path: Path) -> None:
    """OrtPerfTuning's form: every *_list takes a list, each value tried by the pass (as the thread lists
    already were; providers_list was refused as a search without search)."""
    passes = {
        "q": {
            "type": "OrtSessionParamsTuning",
            "providers_list": ["CPUExecutionProvider"],
            "intra_thread_num_list": [1, 2],
        }
    }
    (option,) = _workflow(tmp_path, passes, None).slots[0].options
    assert option.dims == ()
    assert option.fixed["providers_list"] == ["CPUExecutionProvider"]
    assert option.fixed["intra_thread_num_list"] == [1, 2]
