"""Olive config forms that Olive accepts (or removed), validated the way Olive reads them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from olivine.config.loader import validate_config
from olivine.errors import ConfigError
from olivine.evaluate.evaluator import _hf_metrics

ONNX = {"type": "ONNXModel", "model_path": "m.onnx"}


def _error(data: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        validate_config(data, file="cfg.json")
    return info.value


@pytest.mark.parametrize(
    ("data", "path", "version", "successor"),
    [
        (
            {"input_model": {"type": "PyTorchModel", "hf_config": {"model_name": "x"}}},
            "input_model.hf_config",
            "0.7",
            "HfModel",
        ),
        ({"input_model": ONNX, "pass_flows": [["a"]]}, "pass_flows", "0.9.3", "'passes'"),
        ({"input_model": ONNX, "auto_optimizer_config": {}}, "auto_optimizer_config", "0.9.3", "'passes'"),
        (
            {"input_model": {"type": "PyTorchModel", "model_path": "m.pt", "model_storage_kind": "file"}},
            "input_model.model_storage_kind",
            "0.3",
            "model_path",
        ),
        (
            {
                "input_model": ONNX,
                "evaluators": {
                    "e": {
                        "metrics": [
                            {
                                "name": "acc",
                                "type": "accuracy",
                                "sub_types": [{"name": "accuracy_score"}],
                                "user_config": {"dataloader_func": "create_dataloader"},
                            }
                        ]
                    }
                },
            },
            "evaluators.e.metrics.0.user_config.dataloader_func",
            "0.7",
            "data_config",
        ),
        (
            {
                "input_model": ONNX,
                "evaluators": {
                    "e": {
                        "metrics": [
                            {
                                "name": "acc",
                                "type": "accuracy",
                                "sub_type": "accuracy_score",
                                "priority_rank": 1,
                            }
                        ]
                    }
                },
            },
            "evaluators.e.metrics.0.sub_type",
            "0.2.1",
            "sub_types",
        ),
    ],
)
def test_removed_olive_key_names_the_olive_version_and_successor(
    data: dict[str, Any], path: str, version: str, successor: str
) -> None:
    err = _error(data)
    assert err.path == path
    assert f"removed in Olive {version}" in err.message
    assert successor in err.message
    assert "did you mean" not in err.message
    assert str(err).startswith(f"cfg.json: {path}: ")


def test_key_path_has_no_pydantic_internals() -> None:
    model = {"type": "PyTorchModel", "model_path": "m.pt", "io_config": {"input_names": ["x"], "bogus": 1}}
    err = _error({"input_model": model})
    assert err.path == "input_model.io_config.bogus"


def test_io_config_accepts_olive_output_shapes_and_types() -> None:
    io = {"input_names": ["x"], "output_names": ["y"], "output_shapes": [[1, 2]], "output_types": ["float32"]}
    cfg = validate_config({"input_model": {"type": "PyTorchModel", "model_path": "m.pt", "io_config": io}})
    assert cfg.input_model.io_config.output_shapes == [[1, 2]]  # type: ignore[union-attr]


def test_metric_level_user_config_keys_are_folded_into_user_config() -> None:
    metric = {
        "name": "lat",
        "type": "latency",
        "sub_types": [{"name": "avg"}],
        "inference_settings": {"onnx": {"session_options": {}}},
    }
    cfg = validate_config({"input_model": ONNX, "evaluators": {"e": {"metrics": [metric]}}})
    user_config = cfg.evaluators["e"].metrics[0].user_config
    assert user_config is not None and user_config.inference_settings is not None
    assert user_config.inference_settings.onnx is not None


def test_empty_evaluator_is_accepted() -> None:
    cfg = validate_config({"input_model": ONNX, "evaluators": {"e": {}}, "evaluator": "e"})
    assert cfg.evaluators["e"].metrics == []


def test_evaluator_target_and_type_args_are_ignored_with_a_warning_as_olive_ignores_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    evaluator = {"metrics": [], "target": "local_system", "type_args": {}, "name": "e"}
    with caplog.at_level("WARNING", logger="olivine.config.evaluators"):
        cfg = validate_config({"input_model": ONNX, "evaluators": {"e": evaluator}})
    assert cfg.evaluators["e"].metrics == []
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "'target' ignored" in warned and "'type_args' ignored" in warned
    # Other unknown keys stay errors (a typo), unlike Olive, which folds them into type_args.
    assert _error({"input_model": ONNX, "evaluators": {"e": {"metric": []}}}).path == "evaluators.e.metric"


@pytest.mark.parametrize("kind", ["LMEvaluator", "MTEBEvaluator"])
def test_unsupported_olive_evaluator_types_are_refused_by_name(kind: str) -> None:
    err = _error({"input_model": ONNX, "evaluators": {"e": {"type": kind, "tasks": ["arc_easy"]}}})
    assert err.path == "evaluators.e"
    assert f"evaluator type '{kind}'" in err.message


def test_huggingface_metrics_sub_type_outside_the_computed_ones_names_the_backend() -> None:
    metric = {
        "name": "m",
        "type": "accuracy",
        "backend": "huggingface_metrics",
        "sub_types": [{"name": "bleu"}],
    }
    err = _error({"input_model": ONNX, "evaluators": {"e": {"metrics": [metric]}}})
    assert "huggingface_metrics" in err.message
    assert "bleu" in err.message


class _FakeSession:
    """Stands in for the evaluation session: the predictions of a model that is not run here."""

    def __init__(self, preds: list[int], targets: list[int]) -> None:
        from olivine.evaluate.inference import ModelOutput

        self.output = ModelOutput(preds=np.array(preds), logits=None)
        self.targets = np.array(targets)

    def predictions(self, metric: Any) -> tuple[Any, np.ndarray]:
        return self.output, self.targets


# Expected values are scikit-learn's (which evaluate's metrics wrap) on the same arrays, computed once with
# scikit-learn 1.9: accuracy_score, f1_score, f1_score(average=...), precision_score(average="weighted",
# zero_division=0), recall_score.
@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("accuracy", None, 0.625),
        ("f1", None, 2 / 3),
        ("f1", {"average": "macro"}, 0.6222222222222222),
        ("f1", {"average": "micro"}, 0.625),
        ("precision", {"average": "weighted"}, 0.7083333333333333),
        ("recall", None, 0.6),
    ],
)
def test_huggingface_metrics_match_scikit_learn_which_evaluate_wraps(
    name: str, params: dict[str, Any] | None, expected: float
) -> None:
    binary = params is None or params.get("average", "binary") == "binary"
    preds = [1, 0, 1, 1, 0, 1, 0, 0] if binary else [2, 0, 1, 1, 0, 2, 0, 1]
    targets = [1, 0, 0, 1, 1, 1, 0, 1] if binary else [2, 1, 1, 0, 0, 2, 0, 2]
    sub: dict[str, Any] = {"name": name, "priority": 1}
    if params:
        sub["metric_config"] = {"compute_params": params}
    metric = {
        "name": "m",
        "type": "accuracy",
        "backend": "huggingface_metrics",
        "sub_types": [sub],
        "data_config": "d",
    }
    cfg = validate_config({"input_model": ONNX, "evaluators": {"e": {"metrics": [metric]}}})
    got = _hf_metrics(_FakeSession(preds, targets), cfg.evaluators["e"].metrics[0])  # type: ignore[arg-type]
    assert got[name] == pytest.approx(expected)


def _onnx_workflow(tmp_path: Any, **extra: Any) -> Any:
    import json

    from olivine.api import load
    from tiny_models import write_onnx_mlp

    cfg = {"input_model": write_onnx_mlp(tmp_path / "m"), **extra}
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    return path, lambda: load(path)


def test_declared_but_unused_olive_system_warns_and_validates(tmp_path: Any, caplog: Any) -> None:
    # (AzureML is a host now; Docker is still Olive-only.)
    _, load = _onnx_workflow(tmp_path, systems={"aml": {"type": "Docker", "image_name": "olive:latest"}})
    workflow = load()
    assert workflow.config.systems == {}
    assert any("systems.aml: Docker system declared but not used" in r.getMessage() for r in caplog.records)


def test_a_reference_to_an_olive_only_system_is_refused_at_validation(tmp_path: Any) -> None:
    systems = {"aml": {"type": "Docker", "image_name": "olive:latest"}}
    path, load = _onnx_workflow(tmp_path, systems=systems, engine={"host": "aml"})
    with pytest.raises(ConfigError) as info:
        load()
    assert info.value.path == "engine.host"
    assert "Docker" in info.value.message
    assert info.value.file == str(path)


@pytest.mark.parametrize(
    ("accelerator", "key"),
    [
        ({"device": "gpu", "execution_providers": ["CUDAExecutionProvider"]}, "device"),
        ({"device": "cpu", "execution_providers": ["OpenVINOExecutionProvider"]}, "execution_providers"),
    ],
)
def test_non_cpu_target_is_refused_at_validation_with_file_and_key(
    tmp_path: Any, accelerator: dict[str, Any], key: str
) -> None:
    from olivine.errors import NotSupportedError

    systems = {"local": {"type": "LocalSystem", "accelerators": [accelerator]}}
    path, load = _onnx_workflow(tmp_path, systems=systems, engine={"target": "local"})
    with pytest.raises(NotSupportedError) as info:
        load()
    assert info.value.path == f"systems.local.accelerators.0.{key}"
    assert str(info.value).startswith(f"{path}: systems.local")


def test_olive_05_accelerator_device_name_says_the_new_form() -> None:
    err = _error(
        {"input_model": ONNX, "systems": {"local": {"type": "LocalSystem", "accelerators": ["cpu"]}}}
    )
    assert err.path == "systems.local.accelerators.0"
    assert "{device: cpu" in err.message


def test_relative_tokenizer_folder_in_a_data_config_is_resolved_and_bundled(tmp_path: Any) -> None:
    from tiny_models import write_tiny_bert

    write_tiny_bert(tmp_path / "tok")
    (tmp_path / "d.csv").write_text("text,label\nthe cat,1\n")
    data = {
        "name": "d",
        "type": "HuggingfaceContainer",
        "load_dataset_config": {"data_name": "csv", "data_files": "d.csv", "split": "train"},
        "pre_process_data_config": {"model_name": "tok", "input_cols": ["text"], "label_col": "label"},
    }
    _, load = _onnx_workflow(tmp_path, data_configs=[data])
    workflow = load()
    files = dict(workflow.local_files())
    assert files["data_configs.0.pre_process_data_config.params.model_name"] == tmp_path / "tok"


def _data_config(**fields: Any) -> Any:
    from olivine.config.data import DataConfig

    return DataConfig.model_validate({"name": "d", **fields})


def test_user_dataloader_without_a_dataset_gets_olives_local_dataset(tmp_path: Any) -> None:
    from olivine.data.components import resolve_components

    script = tmp_path / "script.py"
    script.write_text("def my_loader(dataset, batch_size):\n    assert dataset is None\n    return [1]\n")
    dc = _data_config(user_script=str(script), dataloader_config={"type": "my_loader", "batch_size": 2})
    components = resolve_components(dc, base_dir=tmp_path)
    assert components["load_dataset"].type_name == "local_dataset"


@pytest.mark.parametrize(
    "container", ["TransformersTokenDummyDataContainer", "TransformersPromptDummyDataContainer"]
)
def test_transformers_dummy_containers_are_known(tmp_path: Any, container: str) -> None:
    from olivine.data.components import validate_data_config

    validate_data_config(_data_config(type=container), base_dir=tmp_path)


def test_huggingface_dataset_accepts_streaming(tmp_path: Any) -> None:
    from olivine.data.components import validate_data_config

    (tmp_path / "d.csv").write_text("text,label\na,1\n")
    load = {"data_name": "csv", "data_files": str(tmp_path / "d.csv"), "split": "train", "streaming": True}
    validate_data_config(
        _data_config(
            type="HuggingfaceContainer",
            load_dataset_config=load,
            pre_process_data_config={"model_name": str(tmp_path), "input_cols": ["text"]},
        ),
        base_dir=tmp_path,
    )


def test_align_labels_maps_label_names_through_the_models_label2id() -> None:
    from olivine.data.hf import align_labels

    rows = [{"t": "a", "label": "POSITIVE"}, {"t": "b", "label": "negative"}, {"t": "c", "label": 1}]
    out = align_labels(rows, "label", {"NEGATIVE": 0, "POSITIVE": 1})
    assert [r["label"] for r in out] == [1, 0, 1]


def test_unknown_optimization_options_are_refused_at_validation() -> None:
    from olivine.passes.transformers_optimization import OrtTransformersOptimizationConfig

    with pytest.raises(ValueError, match=r"unknown optimization_options .*enable_gelu_fusio"):
        OrtTransformersOptimizationConfig.model_validate(
            {"optimization_options": {"enable_gelu_fusio": True}}
        )
    ok = OrtTransformersOptimizationConfig.model_validate({"optimization_options": {"enable_gelu": False}})
    assert ok.optimization_options == {"enable_gelu": False}


def test_output_dir_null_means_the_default() -> None:
    cfg = validate_config({"input_model": ONNX, "output_dir": None, "ort_py_log_severity_level": 2})
    assert cfg.engine.output_dir == "olivine-output"


def test_dry_run_checks_column_names_against_a_local_csv_header(tmp_path: Any) -> None:
    from olivine.data.components import validate_data_config

    (tmp_path / "d.csv").write_text("sentence,label\nthe cat,1\n")
    dc = _data_config(
        type="HuggingfaceContainer",
        load_dataset_config={"data_name": "csv", "data_files": str(tmp_path / "d.csv"), "split": "train"},
        pre_process_data_config={"model_name": str(tmp_path), "input_cols": ["sentense"]},
    )
    with pytest.raises(ConfigError) as info:
        validate_data_config(dc, base_dir=tmp_path, path="data_configs.0")
    assert info.value.path == "data_configs.0.pre_process_data_config.params.input_cols"
    assert "'sentense'" in info.value.message and "sentence, label" in info.value.message
