"""evaluate_model on tiny real models: an ONNX classifier built with onnx.helper and a PyTorch module."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from olivine.config.data import DataConfig
from olivine.config.evaluators import EvaluatorConfig
from olivine.errors import ConfigError, EvaluationError
from olivine.evaluate import evaluate_model
from olivine.model.accelerator import Accelerator
from olivine.model.handle import ModelHandle

pytestmark = pytest.mark.integration

# The classifier's logits are the first three features, so the predicted class is the index of the largest
# of f0, f1, f2 (f3 is ignored). Rows: (f0, f1, f2, f3, label); predictions in the comment.
ROWS = [
    (0.9, 0.1, 0.0, 5.0, 0),  # pred 0, right
    (0.2, 0.7, 0.1, 5.0, 1),  # pred 1, right
    (0.1, 0.2, 0.6, 5.0, 2),  # pred 2, right
    (0.5, 0.4, 0.1, 5.0, 1),  # pred 0, wrong
    (0.0, 0.3, 0.9, 5.0, 2),  # pred 2, right
    (0.3, 0.6, 0.2, 5.0, 0),  # pred 1, wrong
    (0.8, 0.1, 0.1, 5.0, 0),  # pred 0, right
    (0.1, 0.1, 0.7, 5.0, 1),  # pred 2, wrong
]
EXPECTED_ACCURACY = 5 / 8

USER_SCRIPT = """
import numpy as np
from olivine.data.registry import Registry


@Registry.register_dataset()
def csv_features(data_dir, file_name="data.csv"):
    table = np.loadtxt(f"{data_dir}/{file_name}", delimiter=",", skiprows=1, dtype=np.float32)
    return [({"features": row[:4]}, int(row[4])) for row in table]


@Registry.register_post_process()
def class_of(output):
    return np.argmax(output, axis=-1)


def evaluate_fn(model, device, execution_providers, scale=1.0):
    return {"answer": 42.0 * scale, "providers": float(len(execution_providers))}


def metric_fn(model_output, targets, offset=0.0):
    return float((model_output.preds == targets).mean() + offset + 0 * model_output.logits.sum())
"""


def _write_classifier(folder: Path) -> ModelHandle:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = np.zeros((4, 3), dtype=np.float32)
    weight[[0, 1, 2], [0, 1, 2]] = 1.0
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["features", "w"], ["logits"])],
        "tiny_classifier",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
        initializer=[numpy_helper.from_array(weight, "w")],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save_model(proto, str(folder / "model.onnx"))
    return ModelHandle(kind="onnx", config={"model_path": str(folder / "model.onnx")})


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("evaluator")
    (base / "data").mkdir()
    lines = ["f0,f1,f2,f3,label", *(",".join(str(v) for v in row) for row in ROWS)]
    (base / "data" / "data.csv").write_text("\n".join(lines) + "\n")
    (base / "user_script.py").write_text(USER_SCRIPT)
    features = np.array([row[:4] for row in ROWS], dtype=np.float32)
    labels = np.array([row[4] for row in ROWS], dtype=np.int64)
    np.savez(base / "data" / "eval.npz", features=features, label=labels)
    return base


@pytest.fixture(scope="module")
def onnx_model(workdir: Path) -> ModelHandle:
    return _write_classifier(workdir / "model")


def _data_configs() -> dict[str, DataConfig]:
    configs = [
        {
            "name": "csv_data",
            "user_script": "user_script.py",
            "load_dataset_config": {"type": "csv_features", "data_dir": "data"},
            "dataloader_config": {"batch_size": 3},
        },
        {
            "name": "npz_data",
            "load_dataset_config": {"type": "numpy_dataset", "data_files": "data/eval.npz"},
            "dataloader_config": {"batch_size": 4},
        },
    ]
    return {c["name"]: DataConfig.model_validate(c) for c in configs}


def _evaluate(model: ModelHandle, metrics: list[dict[str, Any]], base: Path, **evaluator: Any) -> Any:
    config = EvaluatorConfig.model_validate({"metrics": metrics, **evaluator})
    return evaluate_model(
        model, config, data_configs=_data_configs(), accelerator=Accelerator(), base_dir=base
    )


def test_evaluate_model_accuracy_matches_hand_count_when_data_comes_from_a_user_script(
    onnx_model: ModelHandle, workdir: Path
) -> None:
    metric = {
        "name": "acc",
        "type": "accuracy",
        "data_config": "csv_data",
        "sub_types": [
            {
                "name": "accuracy_score",
                "priority": 1,
                "metric_config": {"task": "multiclass", "num_classes": 3},
            },
            {
                "name": "f1_score",
                "metric_config": {"task": "multiclass", "num_classes": 3, "average": "macro"},
            },
        ],
    }
    results = _evaluate(onnx_model, [metric], workdir)
    assert results["acc-accuracy_score"].value == pytest.approx(EXPECTED_ACCURACY)
    assert results["acc-accuracy_score"].priority == 1
    assert results["acc-accuracy_score"].higher_is_better is True
    # Per class (tp, fp, fn): 0 -> (2, 1, 1), 1 -> (1, 1, 2), 2 -> (2, 1, 0); f1 = 2tp / (2tp + fp + fn).
    assert results["acc-f1_score"].value == pytest.approx((4 / 6 + 2 / 5 + 4 / 5) / 3)
    assert results["acc-f1_score"].priority == -1


def test_evaluate_model_accuracy_is_the_same_through_numpy_dataset(
    onnx_model: ModelHandle, workdir: Path
) -> None:
    metric = {
        "name": "acc",
        "type": "accuracy",
        "data_config": "npz_data",
        "sub_types": [{"name": "accuracy_score", "metric_config": {"task": "multiclass", "num_classes": 3}}],
    }
    results = _evaluate(onnx_model, [metric], workdir)
    assert results["acc-accuracy_score"].value == pytest.approx(EXPECTED_ACCURACY)


def test_evaluate_model_latency_and_throughput_return_every_sub_type(
    onnx_model: ModelHandle, workdir: Path
) -> None:
    subs = ["avg", "max", "min", "p50", "p75", "p90", "p95", "p99", "p999"]
    timing = {"warmup_num": 2, "repeat_test_num": 15}
    metrics = [
        {
            "name": "latency",
            "type": "latency",
            "data_config": "npz_data",
            "sub_types": [{"name": s, "metric_config": timing} if s == "avg" else {"name": s} for s in subs],
        },
        {
            "name": "throughput",
            "type": "throughput",
            "data_config": "npz_data",
            "sub_types": [{"name": "avg"}],
        },
    ]
    metrics[0]["sub_types"][0]["priority"] = 1
    results = _evaluate(onnx_model, metrics, workdir)
    lat = {s: results[f"latency-{s}"].value for s in subs}
    assert 0 < lat["min"] <= lat["p50"] <= lat["p75"] <= lat["p90"] <= lat["p99"] <= lat["p999"] <= lat["max"]
    assert lat["min"] <= lat["avg"] <= lat["max"]
    assert results["latency-avg"].higher_is_better is False
    assert results["throughput-avg"].value > 0
    assert results["throughput-avg"].higher_is_better is True


def test_evaluate_model_latency_uses_static_onnx_shapes_when_there_is_no_data_config(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "static",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5])],
    )
    onnx.save_model(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9),
        str(tmp_path / "m.onnx"),
    )
    model = ModelHandle(kind="onnx", config={"model_path": str(tmp_path / "m.onnx")})
    metric = {
        "name": "tp",
        "type": "throughput",
        "sub_types": [{"name": "p50", "metric_config": {"warmup_num": 0}}],
    }
    results = _evaluate(model, [metric], tmp_path)
    assert results["tp-p50"].value > 0


def test_evaluate_model_size_on_disk_is_the_file_size(onnx_model: ModelHandle, workdir: Path) -> None:
    results = _evaluate(
        onnx_model, [{"name": "size", "type": "size_on_disk", "sub_types": [{"name": "bytes"}]}], workdir
    )
    assert results["size-bytes"].value == (workdir / "model" / "model.onnx").stat().st_size


def test_evaluate_model_custom_evaluate_func_gets_kwargs_and_returns_sub_types(
    onnx_model: ModelHandle, workdir: Path
) -> None:
    metric = {
        "name": "custom",
        "type": "custom",
        "sub_types": [{"name": "answer", "priority": 1, "higher_is_better": True}, {"name": "providers"}],
        "user_config": {"evaluate_func": "evaluate_fn", "evaluate_func_kwargs": {"scale": 2.0}},
    }
    results = _evaluate(onnx_model, [metric], workdir, user_script="user_script.py")
    assert results["custom-answer"].value == 84.0
    assert results["custom-providers"].value == 1.0


def test_evaluate_model_custom_metric_func_gets_post_processed_preds(
    onnx_model: ModelHandle, workdir: Path
) -> None:
    metric = {
        "name": "custom",
        "type": "custom",
        "data_config": {
            "name": "with_post",
            "user_script": "user_script.py",
            "load_dataset_config": {"type": "csv_features", "data_dir": "data"},
            "post_process_data_config": {"type": "class_of"},
        },
        "sub_types": [{"name": "hits"}],
        "user_config": {
            "user_script": "user_script.py",
            "metric_func": "metric_fn",
            "metric_func_kwargs": {"offset": 1.0},
        },
    }
    results = _evaluate(onnx_model, [metric], workdir)
    assert results["custom-hits"].value == pytest.approx(EXPECTED_ACCURACY + 1.0)


def test_evaluate_model_raises_config_error_with_key_path_for_a_misspelled_param(
    onnx_model: ModelHandle, workdir: Path
) -> None:
    metric = {
        "name": "acc",
        "type": "accuracy",
        "data_config": {
            "name": "typo",
            "load_dataset_config": {
                "type": "numpy_dataset",
                "data_files": "data/eval.npz",
                "lable_name": "x",
            },
        },
        "sub_types": [{"name": "accuracy_score"}],
    }
    with pytest.raises(ConfigError) as info:
        _evaluate(onnx_model, [metric], workdir)
    assert info.value.path == "data_configs.typo.load_dataset_config.params.lable_name"
    assert "did you mean 'label_name'" in str(info.value)


def test_evaluate_model_names_the_metric_when_the_user_function_fails(
    onnx_model: ModelHandle, workdir: Path
) -> None:
    metric = {
        "name": "broken",
        "type": "custom",
        "sub_types": [{"name": "answer"}],
        "user_config": {"evaluate_func": "evaluate_fn", "evaluate_func_kwargs": {"scale": "x"}},
    }
    with pytest.raises(EvaluationError, match="metric 'broken'"):
        _evaluate(onnx_model, [metric], workdir, user_script="user_script.py")


TORCH_SCRIPT = textwrap.dedent(
    """
    import torch


    class Classifier(torch.nn.Module):
        def forward(self, features):
            return features[:, :3] * 1.0


    def load(model_path):
        return Classifier()
    """
)


def test_evaluate_model_runs_a_pytorch_model_through_the_same_metrics(workdir: Path) -> None:
    pytest.importorskip("torch")
    script = workdir / "torch_model.py"
    script.write_text(TORCH_SCRIPT)
    model = ModelHandle(
        kind="pytorch",
        config={
            "model_loader": "load",
            "model_script": str(script),
            "io_config": {"input_names": ["features"], "output_names": ["logits"]},
        },
    )
    metric = {
        "name": "acc",
        "type": "accuracy",
        "data_config": "npz_data",
        "sub_types": [{"name": "accuracy_score", "metric_config": {"task": "multiclass", "num_classes": 3}}],
    }
    results = _evaluate(model, [metric], workdir)
    assert results["acc-accuracy_score"].value == pytest.approx(EXPECTED_ACCURACY)


def _write_tiny_bert(folder: Path) -> ModelHandle:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    folder.mkdir(parents=True, exist_ok=True)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "movie", "very", "a"]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    transformers.BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(str(folder))
    config = transformers.BertConfig(
        vocab_size=len(words),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        transformers.BertModel(config).eval().save_pretrained(str(folder))
    return ModelHandle(kind="hf", config={"model_path": str(folder), "task": "feature-extraction"})


HF_METRIC_SCRIPT = """
import numpy as np


def hidden_size(model_output, targets):
    hidden = model_output.logits
    return {"width": float(hidden.shape[-1]), "rows": float(len(targets))}
"""


def test_evaluate_model_tokenizes_with_the_input_models_tokenizer_and_runs_hf(tmp_path: Path) -> None:
    model = _write_tiny_bert(tmp_path / "bert")
    (tmp_path / "d.csv").write_text("sentence,label\na good movie,1\nvery bad,0\nbad movie,0\n")
    (tmp_path / "metric.py").write_text(HF_METRIC_SCRIPT)
    data = DataConfig.model_validate(
        {
            "name": "reviews",
            "type": "HuggingfaceContainer",
            "load_dataset_config": {"data_name": "csv", "data_files": "d.csv", "split": "train"},
            "pre_process_data_config": {"input_cols": ["sentence"], "max_length": 8, "padding": "max_length"},
            "dataloader_config": {"batch_size": 2},
        }
    )
    evaluator = EvaluatorConfig.model_validate(
        {
            "metrics": [
                {
                    "name": "shape",
                    "type": "custom",
                    "data_config": "reviews",
                    "sub_types": [
                        {"name": "width", "priority": 1, "higher_is_better": True},
                        {"name": "rows"},
                    ],
                    "user_config": {"user_script": "metric.py", "metric_func": "hidden_size"},
                },
                {
                    "name": "latency",
                    "type": "latency",
                    "data_config": "reviews",
                    "sub_types": [{"name": "avg", "metric_config": {"warmup_num": 1, "repeat_test_num": 3}}],
                },
            ]
        }
    )
    results = evaluate_model(
        model,
        evaluator,
        data_configs={"reviews": data},
        accelerator=Accelerator(),
        tokenizer_path=model.model_path,
        base_dir=tmp_path,
    )
    assert results["shape-width"].value == 16.0
    assert results["shape-rows"].value == 3.0
    assert results["latency-avg"].value > 0
