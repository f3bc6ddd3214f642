"""Config validation: Olive's format accepted, typos and wrong types refused with the key path and file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from olivine.config.loader import load_config, validate_config
from olivine.config.model import HfModelConfig, ONNXModelConfig
from olivine.config.systems import LocalSystemConfig
from olivine.errors import ConfigError


def _base(**extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {"input_model": {"type": "ONNXModel", "model_path": "m.onnx"}}
    cfg.update(extra)
    return cfg


def _error(data: dict[str, Any], file: str | None = "cfg.json") -> ConfigError:
    with pytest.raises(ConfigError) as info:
        validate_config(data, file=file)
    return info.value


def test_config_accepts_olive_nested_config_key_and_case_insensitive_type() -> None:
    cfg = validate_config({"input_model": {"type": "onnxmodel", "config": {"model_path": "m.onnx"}}})
    assert isinstance(cfg.input_model, ONNXModelConfig)
    assert cfg.input_model.model_path == "m.onnx"
    assert cfg.workflow_id == "default_workflow"


def test_config_moves_flattened_engine_keys_under_engine() -> None:
    cfg = validate_config(_base(cache_dir="c", log_severity_level=0, evaluate_input_model=False))
    assert cfg.engine.cache_dir == "c"
    assert cfg.engine.log_severity_level == 0
    assert cfg.engine.evaluate_input_model is False


def test_config_refuses_engine_key_given_twice() -> None:
    err = _error(_base(cache_dir="a", engine={"cache_dir": "b"}))
    assert "cache_dir" in str(err)


def test_config_misspelled_top_level_key_names_key_and_file() -> None:
    err = _error(_base(evaluatorz={}))
    assert err.path == "evaluatorz"
    assert str(err).startswith("cfg.json: evaluatorz: unknown key")


def test_config_misspelled_nested_key_suggests_the_right_one() -> None:
    err = _error({"input_model": {"type": "HfModel", "model_path": "x", "taks": "feature-extraction"}})
    assert err.path == "input_model.taks"
    assert "did you mean 'task'" in str(err)


def test_config_misspelled_accelerator_key_has_full_path() -> None:
    systems = {
        "local": {"type": "LocalSystem", "accelerators": [{"device": "cpu", "execution_provider": []}]}
    }
    err = _error(_base(systems=systems))
    assert err.path == "systems.local.accelerators.0.execution_provider"
    assert "execution_providers" in str(err)


def test_config_wrong_type_is_reported_with_value() -> None:
    err = _error(_base(log_severity_level="loud"))
    assert err.path == "engine.log_severity_level"
    assert "'loud'" in str(err)


def test_config_union_key_reports_the_member_the_value_is_meant_for() -> None:
    # search_strategy is true/false or a mapping: a mapping with one bad value is one problem, not two.
    err = _error(_base(search_strategy={"max_samples": -1}))
    assert err.path == "engine.search_strategy.max_samples" and "more problem" not in str(err)
    assert "greater than or equal to 0" in str(err)
    # A before-validator of the mapping member that refuses its content is the one problem too.
    err = _error(_base(search_strategy={"sampler": "tpe", "sampler_config": {"foo": 1}}))
    assert err.path == "engine.search_strategy" and "more problem" not in str(err)
    assert "sampler_config has an unknown key 'foo'; allowed: max_samples, seed" in str(err)
    # A value no member takes names every member once.
    err = _error(_base(search_strategy=3))
    assert err.path == "engine.search_strategy"
    assert "a mapping or a valid boolean (got 3)" in str(err) and "more problem" not in str(err)


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_config_search_seed_is_refused_outside_what_the_samplers_take(seed: int) -> None:
    # optuna's samplers seed numpy, which takes 0 .. 2**32 - 1: tpe raised at run time, after the input
    # model's evaluation, as an internal error.
    err = _error(_base(search_strategy={"sampler": "tpe", "seed": seed}))
    assert err.path == "engine.search_strategy.seed" and str(seed) in str(err)


def test_config_unknown_model_type_lists_allowed() -> None:
    err = _error({"input_model": {"type": "TFModel", "model_path": "x"}})
    assert err.path == "input_model.type"
    assert "HfModel" in str(err) and "ONNXModel" in str(err)


def test_config_missing_required_key_is_named() -> None:
    err = _error({"input_model": {"type": "HfModel"}})
    assert err.path == "input_model.model_path"
    assert "missing" in str(err)


def test_config_olive_system_types_not_supported_yet_are_clear_when_used() -> None:
    systems = {"d": {"type": "Docker", "config": {"image_name": "x"}}}
    assert validate_config(_base(systems=systems)).olive_only_systems == {"d": "Docker"}
    err = _error(_base(systems=systems, engine={"host": "d"}))
    assert err.path == "engine.host"
    assert "not supported" in str(err)


def test_config_device_is_case_insensitive() -> None:
    cfg = validate_config(_base(systems={"s": {"type": "LocalSystem", "accelerators": [{"device": "CPU"}]}}))
    system = cfg.systems["s"]
    assert isinstance(system, LocalSystemConfig)
    assert system.accelerators is not None and system.accelerators[0].device == "cpu"


def test_config_workflow_id_must_be_a_safe_folder_name() -> None:
    err = _error(_base(workflow_id="../escape"))
    assert err.path == "workflow_id"


def test_config_workflow_host_is_accepted_by_schema() -> None:
    cfg = validate_config(_base(workflow_host="worker"))
    assert cfg.workflow_host == "worker"


def test_config_ranked_priorities_must_be_contiguous() -> None:
    metrics = [
        {"name": "lat", "type": "latency", "sub_types": [{"name": "avg", "priority": 1}]},
        {"name": "size", "type": "size_on_disk", "sub_types": [{"name": "bytes", "priority": 3}]},
    ]
    err = _error(_base(evaluators={"e": {"metrics": metrics}}))
    assert "priorities" in str(err)


def test_config_lone_sub_metric_gets_priority_one_and_direction() -> None:
    metrics = [{"name": "lat", "type": "latency", "sub_types": [{"name": "p50"}]}]
    cfg = validate_config(_base(evaluators={"e": {"metrics": metrics}}))
    sub = cfg.evaluators["e"].metrics[0].sub_types[0]
    assert sub.priority == 1
    assert sub.higher_is_better is False


def test_config_unknown_latency_sub_type_is_refused() -> None:
    metrics = [{"name": "lat", "type": "latency", "sub_types": [{"name": "median"}]}]
    err = _error(_base(evaluators={"e": {"metrics": metrics}}))
    assert "median" in str(err) and "p50" in str(err)


def test_config_legacy_search_algorithm_is_translated() -> None:
    cfg = validate_config(
        _base(
            search_strategy={"search_algorithm": "exhaustive", "search_algorithm_config": {"num_samples": 3}}
        )
    )
    strategy = cfg.engine.search_strategy
    assert not isinstance(strategy, bool) and strategy is not None
    assert strategy.sampler == "sequential" and strategy.max_samples == 3


@pytest.mark.parametrize(
    ("strategy", "max_samples"),
    [
        ({"search_algorithm": "random"}, 1),  # Olive < 0.8: num_samples defaults to 1 for random and tpe
        ({"search_algorithm": "tpe", "num_samples": 4}, 4),  # flat beside search_algorithm (nested by Olive)
        (
            {
                "search_algorithm": "random",
                "search_algorithm_config": {"num_samples": 5, "with_replacement": False},
            },
            5,
        ),
        ({"search_algorithm": "exhaustive"}, 0),  # every point
    ],
)
def test_config_legacy_search_algorithm_reads_num_samples(strategy: dict[str, Any], max_samples: int) -> None:
    cfg = validate_config(_base(search_strategy={"execution_order": "joint", **strategy}))
    parsed = cfg.engine.search_strategy
    assert not isinstance(parsed, bool) and parsed is not None
    assert parsed.max_samples == max_samples


def test_config_legacy_search_algorithm_refuses_sampling_with_replacement() -> None:
    err = _error(_base(search_strategy={"search_algorithm": "random", "with_replacement": True}))
    assert "with_replacement" in str(err) and "allowed: false" in str(err)


def test_config_output_model_num_is_read_and_checked() -> None:
    cfg = validate_config(_base(search_strategy={"execution_order": "joint", "output_model_num": 2}))
    parsed = cfg.engine.search_strategy
    assert not isinstance(parsed, bool) and parsed is not None and parsed.output_model_num == 2
    assert "output_model_num" in str(_error(_base(search_strategy={"output_model_num": 0})))


def test_config_datastore_refuses_inline_credentials() -> None:
    err = _error(_base(datastores={"blob": {"url": "az://c/p", "account_key": "abc"}}))
    assert "account_key" in str(err)
    assert "abc" not in str(err)


def test_config_pass_params_flat_or_nested_are_merged() -> None:
    passes = {
        "q": {"type": "OnnxDynamicQuantization", "per_channel": True, "config": {"weight_type": "QUInt8"}}
    }
    cfg = validate_config(_base(passes=passes))
    entry = cfg.passes["q"]
    assert not isinstance(entry, list)
    assert entry.config == {"per_channel": True, "weight_type": "QUInt8"}


def test_config_yaml_and_json_files_load_the_same(tmp_path: Path) -> None:
    data = {"input_model": {"type": "HfModel", "model_path": "m", "task": "feature-extraction"}}
    (tmp_path / "c.json").write_text(json.dumps(data))
    (tmp_path / "c.yaml").write_text(
        "input_model:\n  type: HfModel\n  model_path: m\n  task: feature-extraction\n"
    )
    a, b = load_config(tmp_path / "c.json"), load_config(tmp_path / "c.yaml")
    assert isinstance(a.input_model, HfModelConfig)
    assert a == b


def test_config_invalid_json_names_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"input_model": {\n  "type": "HfModel",,\n}}')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value) and "line 2" in str(info.value)


#: A data config a pass may give inline (without its name).
_INLINE_CALIB = {
    "type": "DummyDataContainer",
    "load_dataset_config": {"input_shapes": [[1, 4]], "input_names": ["x"]},
}


def test_an_inline_pass_data_config_joins_data_configs_as_olive_takes_it() -> None:
    calib = _INLINE_CALIB
    cfg = validate_config(
        _base(
            passes={
                "q": {"type": "OnnxStaticQuantization", "data_config": {"name": "calib", **calib}},
                "s": [{"type": "OnnxStaticQuantization", "data_config": calib}],
            }
        )
    )
    assert [d.name for d in cfg.data_configs] == ["calib", "s_data_config"]
    assert cfg.passes["q"].config["data_config"] == "calib"  # type: ignore[union-attr]
    err = _error(
        _base(
            data_configs=[{"name": "calib", "type": "DummyDataContainer"}],
            passes={"q": {"type": "OnnxStaticQuantization", "data_config": {"name": "calib", **calib}}},
        )
    )
    assert err.path == "passes.q.data_config.name" and "other content" in str(err)


def test_an_inline_data_config_under_the_pass_s_config_joins_data_configs_too() -> None:
    calib = _INLINE_CALIB
    cfg = validate_config(
        _base(
            passes={
                "q": {
                    "type": "OnnxStaticQuantization",
                    "config": {"data_config": calib, "per_channel": True},
                },
                "t": [
                    {"type": "OrtSessionParamsTuning", "config": {"data_config": {"name": "lat", **calib}}}
                ],
            }
        )
    )
    assert [d.name for d in cfg.data_configs] == ["q_data_config", "lat"]
    assert cfg.passes["q"].config == {"data_config": "q_data_config", "per_channel": True}  # type: ignore[union-attr]
    assert cfg.passes["t"][0].config["data_config"] == "lat"  # type: ignore[index]
    err = _error(
        _base(
            data_configs=[{"name": "lat", "type": "DummyDataContainer"}],
            passes={
                "q": {"type": "OnnxStaticQuantization", "config": {"data_config": {"name": "lat", **calib}}}
            },
        )
    )
    assert err.path == "passes.q.config.data_config.name" and "other content" in str(err)


def test_a_pass_s_config_that_is_not_a_mapping_is_named() -> None:
    for given in ("x", [["per_channel", True]]):
        err = _error(_base(passes={"q": {"type": "OnnxDynamicQuantization", "config": given}}))
        assert err.path.startswith("passes.q") and "'config' holds the pass's parameters as a mapping" in str(
            err
        )
    cfg = validate_config(_base(passes={"q": {"type": "OnnxDynamicQuantization", "clean_run_cache": None}}))
    assert cfg.passes["q"].clean_run_cache is False  # type: ignore[union-attr]


def test_config_unknown_pass_type_suggests_the_closest_one(tmp_path: Path) -> None:
    from olivine.engine.resolve import resolve_slots

    cfg = validate_config(_base(passes={"q": {"type": "OnnxStaticQuantisation"}}))
    with pytest.raises(ConfigError) as info:
        resolve_slots(cfg, tmp_path)
    assert info.value.path == "passes.q.type"
    assert "unknown pass type 'OnnxStaticQuantisation' (did you mean 'OnnxStaticQuantization'?)" in str(
        info.value
    )
