"""Olive configs that Olive accepts run unchanged: model sources, olive imports, tasks, output layout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from olivine.api import load, run_local
from olivine.errors import ConfigError
from tiny_models import write_mlp

pytestmark = pytest.mark.integration

_NAMED_LOADER_SCRIPT = """
from olive.constants import Framework
from olive.model import PyTorchModelHandler

from mlp_script import MLP, IO_CONFIG

LOADED = []


def load_by_name(model_name: str):
    assert Framework.PYTORCH == "PyTorch"
    LOADED.append(model_name)
    if model_name != "tiny/mlp-by-name":
        raise ValueError(f"unexpected name {model_name}")
    return MLP()


def get_io_config(model: PyTorchModelHandler):
    return IO_CONFIG
"""


def _write(folder: Path, cfg: dict[str, Any]) -> Path:
    path = folder / "cfg.json"
    path.write_text(json.dumps(cfg, indent=2))
    return path


def _named_model(folder: Path) -> dict[str, Any]:
    write_mlp(folder)
    (folder / "named_loader.py").write_text(_NAMED_LOADER_SCRIPT)
    return {
        "type": "PyTorchModel",
        "model_path": "tiny/mlp-by-name",
        "model_loader": "load_by_name",
        "model_script": "named_loader.py",
        "io_config": "get_io_config",
    }


def test_pytorch_model_path_name_is_passed_to_model_loader_and_olive_imports_work(tmp_path: Path) -> None:
    cfg = {
        "input_model": _named_model(tmp_path),
        "passes": {"conversion": {"type": "OnnxConversion", "target_opset": 17}},
        "output_dir": "out",
        "cache_dir": "cache",
    }
    workflow = load(_write(tmp_path, cfg))
    assert workflow.config.input_model.model_path == "tiny/mlp-by-name"
    assert [key for key, _ in workflow.local_files()] == ["input_model.model_script"]
    result = run_local(workflow, cache_dir=tmp_path / "cache", output_dir=tmp_path / "out")
    assert result.best is not None
    assert (tmp_path / "out" / "model_config.json").is_file()


def test_pytorch_model_path_name_without_loader_is_refused_at_validation(tmp_path: Path) -> None:
    cfg = {"input_model": {"type": "PyTorchModel", "model_path": "resnet50"}}
    with pytest.raises(ConfigError) as info:
        load(_write(tmp_path, cfg))
    assert info.value.path == "input_model.model_path"
    assert "model_loader" in str(info.value)
    assert str(info.value).startswith(str(tmp_path / "cfg.json"))


def _tiny_vit(folder: Path) -> None:
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=32,
        patch_size=16,
        num_labels=3,
    )
    ViTForImageClassification(config).save_pretrained(str(folder))


def _tiny_wav2vec2(folder: Path) -> None:
    from transformers import Wav2Vec2Config, Wav2Vec2ForSequenceClassification

    config = Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16, 16),
        conv_stride=(5, 4),
        conv_kernel=(10, 4),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        num_labels=2,
        classifier_proj_size=16,
    )
    Wav2Vec2ForSequenceClassification(config).save_pretrained(str(folder))


def _tiny_whisper(folder: Path) -> None:
    from transformers import WhisperConfig, WhisperForAudioClassification

    config = WhisperConfig(
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        num_mel_bins=16,
        max_source_positions=32,
        vocab_size=100,
        num_labels=2,
    )
    WhisperForAudioClassification(config).save_pretrained(str(folder))


def _tiny_ast(folder: Path) -> None:
    from transformers import ASTConfig, ASTForAudioClassification

    config = ASTConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_mel_bins=16,
        max_length=64,
        num_labels=2,
    )
    ASTForAudioClassification(config).save_pretrained(str(folder))


def _tiny_bart(folder: Path) -> None:
    from transformers import BartConfig, BartForSequenceClassification

    config = BartConfig(
        vocab_size=100,
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=64,
        num_labels=2,
    )
    BartForSequenceClassification(config).save_pretrained(str(folder))


def _tiny_clip(folder: Path) -> None:
    from transformers import CLIPConfig, CLIPModel

    from tiny_models import write_tiny_bert

    write_tiny_bert(folder)  # the tokenizer files; the BERT weights are replaced below
    for name in ("model.safetensors", "config.json"):
        (folder / name).unlink()
    text = {
        "vocab_size": 200,
        "hidden_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 64,
    }
    vision = {
        "hidden_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "image_size": 32,
        "patch_size": 16,
    }
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(
        str(folder)
    )


# CLIP's text pooling indexes by argmax: torch's TorchScript exporter warns about advanced indexing.
@pytest.mark.filterwarnings("ignore:.*aten..index")
@pytest.mark.parametrize(
    ("task", "build", "inputs"),
    [
        ("image-classification", _tiny_vit, ["pixel_values"]),
        # feature-extraction does not say the modality: the model's main input does (it took text's).
        ("feature-extraction", _tiny_vit, ["pixel_values"]),
        ("feature-extraction", _tiny_wav2vec2, ["input_values"]),
        ("audio-classification", _tiny_wav2vec2, ["input_values"]),
        # Spectrogram models: Whisper's input_features [batch, mel, frames], AST's input_values [batch, time, mel]
        ("audio-classification", _tiny_whisper, ["input_features"]),
        ("audio-classification", _tiny_ast, ["input_values"]),
        # Its classifier pools at the last EOS: the example ids end with one.
        ("text-classification", _tiny_bart, ["input_ids", "attention_mask"]),
        # In forward's order, as Olive's export (CLIPModel.forward: input_ids, pixel_values, attention_mask).
        ("zero-shot-image-classification", _tiny_clip, ["input_ids", "pixel_values", "attention_mask"]),
        ("text-generation", None, ["input_ids", "attention_mask"]),
    ],
)
def test_hf_task_exports_with_the_task_inputs(
    tmp_path: Path, task: str, build: Any, inputs: list[str]
) -> None:
    import onnxruntime as ort

    from tiny_models import write_tiny_llama

    folder = tmp_path / "model"
    if build is None:
        write_tiny_llama(folder)
    else:
        folder.mkdir()
        build(folder)
    cfg = {
        "input_model": {"type": "HfModel", "model_path": str(folder), "task": task},
        "passes": {"conversion": {"type": "OnnxConversion", "target_opset": 17}},
    }
    if task == "text-generation":
        # torch 2.13's TorchScript exporter fails on transformers 4.57's Llama masks (unordered_map::at).
        cfg["passes"]["conversion"].update(use_dynamo_exporter=True, target_opset=18)
    result = run_local(load(_write(tmp_path, cfg)), cache_dir=tmp_path / "cache", output_dir=tmp_path / "out")
    assert result.best is not None
    session = ort.InferenceSession(
        str(tmp_path / "out" / "model" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    assert [i.name for i in session.get_inputs()] == inputs


@pytest.mark.parametrize(
    ("processor", "want"),
    [
        (
            {"do_center_crop": True, "crop_size": {"height": 40, "width": 40}, "size": {"shortest_edge": 48}},
            40,
        ),
        ({"size": {"shortest_edge": 40}, "crop_pct": 0.875}, 40),  # ResNet's ConvNext processor
        ({"size": {"height": 40, "width": 40}}, 40),
        ({"size": {"shortest_edge": 800, "longest_edge": 1333}}, 64),  # no one size: Olive's default
        (None, 64),
    ],
)
def test_image_model_without_an_image_size_is_exported_at_its_processors_size(
    tmp_path: Path, processor: dict[str, Any] | None, want: int
) -> None:
    """ResNet's config has no image_size: the export took Olive's 64 x 64 (height and width are fixed in
    the graph) and images its own processor makes (224 x 224) were refused by the model."""
    import json

    import onnxruntime as ort
    from transformers import ResNetConfig, ResNetForImageClassification

    folder = tmp_path / "model"
    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=3)
    ResNetForImageClassification(config).save_pretrained(str(folder))
    if processor is not None:
        (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    cfg = {
        "input_model": {"type": "HfModel", "model_path": str(folder), "task": "image-classification"},
        "passes": {"conversion": {"type": "OnnxConversion", "target_opset": 17}},
    }
    run_local(load(_write(tmp_path, cfg)), cache_dir=tmp_path / "cache", output_dir=tmp_path / "out")
    session = ort.InferenceSession(
        str(tmp_path / "out" / "model" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    assert session.get_inputs()[0].shape[1:] == [3, want, want]


def test_hf_model_without_task_takes_olives_default_and_exports_with_the_kv_cache(tmp_path: Path) -> None:
    import numpy as np
    import onnxruntime as ort
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.cache_utils import DynamicCache

    from tiny_models import write_tiny_llama

    model = write_tiny_llama(tmp_path / "llama")
    del model["task"]  # Olive's default: text-generation-with-past
    # Olive's token dummy data feeds one new token after a past of 8: the cache inputs are generated too.
    data = {
        "name": "tokens",
        "type": "TransformersTokenDummyDataContainer",
        "load_dataset_config": {"max_samples": 2},
    }
    latency = {
        "name": "latency",
        "type": "latency",
        "data_config": "tokens",
        "sub_types": [{"name": "avg", "metric_config": {"warmup_num": 1, "repeat_test_num": 2}}],
    }
    cfg = {
        "input_model": model,
        "data_configs": [data],
        "evaluators": {"e": {"metrics": [latency]}},
        "passes": {"conversion": {"type": "OnnxConversion"}},
        "engine": {"evaluator": "e", "evaluate_input_model": False},
    }
    result = run_local(load(_write(tmp_path, cfg)), cache_dir=tmp_path / "cache", output_dir=tmp_path / "out")
    assert result.best is not None and result.best.metrics
    session = ort.InferenceSession(str(result.best.model.onnx_path), providers=["CPUExecutionProvider"])
    inputs = [i.name for i in session.get_inputs()]
    assert inputs[:3] == ["input_ids", "attention_mask", "position_ids"]
    assert inputs[3:5] == ["past_key_values.0.key", "past_key_values.0.value"]
    outputs = [o.name for o in session.get_outputs()]
    assert outputs[:3] == ["logits", "present.0.key", "present.0.value"]
    # One decoding step after a cached prefix of 5 tokens matches transformers with the same cache.
    torch_model = AutoModelForCausalLM.from_pretrained(str(tmp_path / "llama")).eval()
    past_len, layers = 5, len(inputs[3:]) // 2
    shape = session.get_inputs()[3].shape
    rng = np.random.default_rng(0)
    past = [
        rng.standard_normal((1, shape[1], past_len, shape[3])).astype(np.float32) for _ in range(2 * layers)
    ]
    feed = {
        "input_ids": np.array([[7]], dtype=np.int64),
        "attention_mask": np.ones((1, past_len + 1), dtype=np.int64),
        "position_ids": np.array([[past_len]], dtype=np.int64),
        **dict(zip(inputs[3:], past, strict=True)),
    }
    logits, *presents = session.run(None, feed)
    cache = DynamicCache()
    for layer in range(layers):
        cache.update(torch.from_numpy(past[2 * layer]), torch.from_numpy(past[2 * layer + 1]), layer)
    with torch.no_grad():
        expected = torch_model(
            input_ids=torch.tensor([[7]]),
            attention_mask=torch.ones(1, past_len + 1, dtype=torch.int64),
            position_ids=torch.tensor([[past_len]]),
            past_key_values=cache,
            use_cache=True,
        ).logits.numpy()
    assert np.abs(logits - expected).max() < 1e-4
    assert presents[0].shape[2] == past_len + 1


def test_kv_cache_io_config_needs_the_with_past_task(tmp_path: Path) -> None:
    from tiny_models import write_tiny_llama

    model = write_tiny_llama(tmp_path / "llama")  # task: text-generation
    model["io_config"] = {"input_names": ["input_ids"], "kv_cache": True}
    with pytest.raises(ConfigError) as info:
        load(_write(tmp_path, {"input_model": model, "passes": {"c": {"type": "OnnxConversion"}}}))
    assert info.value.path == "input_model"
    assert "kv_cache needs task text-generation-with-past" in info.value.message


def _bert_to_onnx(tmp_path: Path, **engine: Any) -> dict[str, Any]:
    from tiny_models import write_tiny_bert

    return {
        "input_model": write_tiny_bert(tmp_path / "bert"),
        "passes": {"conversion": {"type": "OnnxConversion", "target_opset": 17}},
        "cache_dir": str(tmp_path / "cache"),
        **engine,
    }


def test_output_dir_ending_in_onnx_is_the_model_file_and_artifacts_go_beside_it(tmp_path: Path) -> None:
    import onnxruntime as ort

    cfg = _bert_to_onnx(tmp_path, output_dir=str(tmp_path / "out" / "bert.onnx"))
    run_local(load(_write(tmp_path, cfg)))
    out = tmp_path / "out"
    assert (out / "bert.onnx").is_file()
    ort.InferenceSession(str(out / "bert.onnx"), providers=["CPUExecutionProvider"])
    assert (out / "footprint.json").is_file()
    model_config = json.loads((out / "model_config.json").read_text())
    assert model_config["config"]["model_path"] == "bert.onnx"
    assert not (out / "model").exists()


def test_no_artifacts_writes_only_the_model_and_its_config(tmp_path: Path) -> None:
    cfg = _bert_to_onnx(tmp_path, output_dir=str(tmp_path / "out"), no_artifacts=True)
    run_local(load(_write(tmp_path, cfg)), output_dir=tmp_path / "out")
    # The hidden digests file only spares the exporter re-hashing the model files.
    names = sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith("."))
    assert names == ["model", "model_config.json"]


def test_output_folder_holds_the_hf_tokenizer_and_points_inside_itself(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    cfg = _bert_to_onnx(tmp_path, output_dir=str(tmp_path / "out"))
    run_local(load(_write(tmp_path, cfg)), output_dir=tmp_path / "out")
    model_dir = tmp_path / "out" / "model"
    for name in ("model.onnx", "config.json", "tokenizer_config.json", "vocab.txt"):
        assert (model_dir / name).is_file(), name
    AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    model_config = json.loads((tmp_path / "out" / "model_config.json").read_text())
    assert model_config["config"]["model_attributes"]["hf_model_path"] == str(model_dir)
    assert str(tmp_path / "bert") not in json.dumps(model_config)


# ------------------------------------------------------------------ targets, resources, legacy keys


def _onnx_cfg(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    from tiny_models import write_onnx_mlp

    return {
        "input_model": write_onnx_mlp(tmp_path / "onnx"),
        "passes": {"peephole": {"type": "OnnxPeepholeOptimizer"}},
        "output_dir": str(tmp_path / "out"),
        "cache_dir": str(tmp_path / "cache"),
        **extra,
    }


_LATENCY = {"name": "latency", "type": "latency", "sub_types": [{"name": "avg"}]}


def test_legacy_flat_num_samples_is_the_samplers_budget(tmp_path: Path) -> None:
    # Olive < 0.8 folded search_strategy keys that are not its own into search_algorithm_config.
    strategy = {"execution_order": "joint", "search_algorithm": "random", "num_samples": 3, "seed": 0}
    evaluators = {"e": {"metrics": [_LATENCY]}}
    cfg = _onnx_cfg(tmp_path, search_strategy=strategy, evaluators=evaluators, evaluator="e")
    workflow = load(_write(tmp_path, cfg))
    assert workflow.search is not None
    assert (workflow.search.sampler, workflow.search.max_samples) == ("random", 3)


def test_azureml_resource_path_is_refused_at_validation_naming_the_key(tmp_path: Path) -> None:
    from olivine.errors import NotSupportedError

    data = {
        "name": "d",
        "type": "DummyDataContainer",
        "load_dataset_config": {
            "data_dir": {"type": "azureml_datastore", "config": {"datastore_name": "w", "relative_path": "x"}}
        },
    }
    with pytest.raises(NotSupportedError) as info:
        load(_write(tmp_path, _onnx_cfg(tmp_path, data_configs=[data])))
    assert info.value.path == "data_configs.0.load_dataset_config.data_dir"
    assert "azureml_datastore" in info.value.message and "local folder" in info.value.message
    assert str(info.value).startswith(str(tmp_path / "cfg.json"))


def test_metric_run_kwargs_are_refused_at_validation_naming_the_key_and_the_arguments(tmp_path: Path) -> None:
    # Olive's llama2_generate.json: a latency metric that times generate(max_new_tokens=64).
    metric = {**_LATENCY, "user_config": {"run_kwargs": {"max_new_tokens": 64}}}
    cfg = _onnx_cfg(tmp_path, evaluators={"e": {"metrics": [metric]}}, evaluator="e")
    with pytest.raises(ConfigError) as info:
        load(_write(tmp_path, cfg))
    assert info.value.path == "evaluators.e.metrics.0.user_config.run_kwargs"
    assert "(max_new_tokens)" in info.value.message and "generate()" in info.value.message
    assert len(str(info.value).splitlines()) == 1
    metric["user_config"]["run_kwargs"] = {}  # nothing to pass: accepted, as in Olive
    assert load(_write(tmp_path, cfg)).config.evaluators["e"].metrics[0].user_config is not None


def test_metrics_listed_at_the_top_and_named_from_evaluators_are_refused_as_olive_refuses_them(
    tmp_path: Path,
) -> None:
    # olive-recipes' whisper_eval_wer.json: Olive 0.13 refuses it (engine.metrics: extra; a str metric).
    metric = {"name": "lat", "type": "latency", "sub_types": [{"name": "avg"}]}
    cfg = _onnx_cfg(tmp_path, metrics=[metric], evaluators={"e": {"metrics": ["lat"]}}, evaluator="e")
    with pytest.raises(ConfigError) as info:
        load(_write(tmp_path, cfg))
    assert info.value.path == "metrics" and "Olive 0.13 refuses it too" in info.value.message
    del cfg["metrics"]
    with pytest.raises(ConfigError) as info:
        load(_write(tmp_path, cfg))
    assert info.value.path == "evaluators.e.metrics.0"
    assert "metric 'lat' is given by name" in info.value.message


def test_metric_sample_log_keys_after_olive_0_13_are_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    metric = {**_LATENCY, "sample_log_num": 10, "sample_log_dir": "logs"}
    cfg = _onnx_cfg(tmp_path, evaluators={"e": {"metrics": [metric]}}, evaluator="e")
    with caplog.at_level("WARNING"):
        workflow = load(_write(tmp_path, cfg))
    assert "sample_log_num, sample_log_dir ignored" in caplog.text
    assert workflow.config.evaluators["e"].metrics[0].name == "latency"


def test_local_resource_path_mapping_reads_as_its_path(tmp_path: Path) -> None:
    cfg = _onnx_cfg(tmp_path)
    folder = cfg["input_model"]["model_path"]
    cfg["input_model"]["model_path"] = {"type": "folder", "config": {"path": folder}}
    workflow = load(_write(tmp_path, cfg))
    assert workflow.config.input_model.model_path == folder


def test_metric_inference_settings_take_one_provider_as_a_string_and_ignore_keys_olive_ignores(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    latency = dict(
        _LATENCY,
        user_config={
            "inference_settings": {
                "execution_provider": "CPUExecutionProvider",  # Olive reads only .onnx / .pytorch
                "onnx": {"execution_provider": "CPUExecutionProvider"},
            }
        },
    )
    cfg = _onnx_cfg(tmp_path, evaluators={"e": {"metrics": [latency]}}, evaluator="e")
    with caplog.at_level("WARNING", logger="olivine"):
        workflow = load(_write(tmp_path, cfg))
    assert workflow.evaluator is not None
    settings = workflow.evaluator.metrics[0].user_config.inference_settings  # type: ignore[union-attr]
    assert settings is not None and settings.onnx is not None
    assert settings.onnx.execution_provider == ["CPUExecutionProvider"]
    assert any("execution_provider ignored, as Olive ignores it" in r.message for r in caplog.records)


@pytest.mark.parametrize("where", ["metric", "model"])
def test_non_cpu_provider_in_inference_settings_is_refused_at_validation(tmp_path: Path, where: str) -> None:
    from olivine.errors import NotSupportedError

    cfg = _onnx_cfg(tmp_path)
    qnn = {"execution_provider": "QNNExecutionProvider"}
    if where == "metric":
        metric = dict(_LATENCY, user_config={"inference_settings": {"onnx": qnn}})
        cfg.update(evaluators={"e": {"metrics": [metric]}}, evaluator="e")
        key = "evaluators.e.metrics.0.user_config.inference_settings.onnx.execution_provider"
    else:
        cfg["input_model"]["inference_settings"] = qnn
        key = "input_model.inference_settings.execution_provider"
    with pytest.raises(NotSupportedError) as info:
        load(_write(tmp_path, cfg))
    assert info.value.path == key
    assert "QNNExecutionProvider not supported" in info.value.message
    assert "--cpu-fallback" in info.value.message


def _gpu_cfg(tmp_path: Path) -> dict[str, Any]:
    metric = dict(
        {"name": "size", "type": "size_on_disk", "sub_types": [{"name": "bytes"}]},
        user_config={"inference_settings": {"onnx": {"execution_provider": "CUDAExecutionProvider"}}},
    )
    return _onnx_cfg(
        tmp_path,
        systems={
            "gpu": {
                "type": "LocalSystem",
                "accelerators": [{"device": "gpu", "execution_providers": ["CUDAExecutionProvider"]}],
            }
        },
        target="gpu",
        evaluators={"e": {"metrics": [metric]}},
        evaluator="e",
    )


def test_gpu_target_is_refused_unless_the_cpu_fallback_is_asked_for_then_runs_on_the_cpu(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from olivine.errors import NotSupportedError

    path = _write(tmp_path, _gpu_cfg(tmp_path))
    with pytest.raises(NotSupportedError) as info:
        load(path)
    assert info.value.path == "systems.gpu.accelerators.0.device"
    with caplog.at_level("WARNING", logger="olivine"):
        workflow = load(path, cpu_fallback=True)
    warned = [r.message for r in caplog.records if "CPU fallback" in r.message]
    assert any("systems.gpu.accelerators.0.device: 'gpu' -> 'cpu'" in m for m in warned)
    assert any("inference_settings.onnx.execution_provider" in m for m in warned)
    assert workflow.accelerator.execution_providers == ("CPUExecutionProvider",)
    # The rewritten config is what a remote host receives: it runs on the CPU there too.
    shipped = workflow.to_json()
    assert shipped["systems"]["gpu"]["accelerators"] == [
        {"device": "cpu", "execution_providers": ["CPUExecutionProvider"]}
    ]
    result = run_local(workflow)
    assert result.best is not None and result.best.metrics


def test_cli_cpu_fallback_warns_for_each_key_and_dry_run_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from olivine.cli.main import main

    path = _write(tmp_path, _gpu_cfg(tmp_path))
    assert main(["run", "--config", str(path), "--dry-run"]) == 2
    assert "--cpu-fallback" in capsys.readouterr().err
    assert main(["run", "--config", str(path), "--dry-run", "--cpu-fallback"]) == 0
    err = capsys.readouterr().err
    assert "WARNING" in err and "CPU fallback (asked for): systems.gpu.accelerators.0.device" in err


def test_target_device_is_refused_before_a_data_script_is_imported(tmp_path: Path) -> None:
    from olivine.errors import NotSupportedError

    (tmp_path / "needs_pkg.py").write_text("import package_not_installed_here\n")
    cfg = _gpu_cfg(tmp_path)
    cfg["data_configs"] = [{"name": "d", "user_script": "needs_pkg.py", "load_dataset_config": {"type": "x"}}]
    with pytest.raises(NotSupportedError) as info:
        load(_write(tmp_path, cfg))
    assert info.value.path == "systems.gpu.accelerators.0.device"


def test_fusion_options_of_any_model_type_are_accepted_as_olive_does(tmp_path: Path) -> None:
    opts = {"enable_group_norm": False, "enable_bias_add": False, "enable_attention": True}
    cfg = _onnx_cfg(tmp_path)
    cfg["passes"] = {
        "o": {"type": "OrtTransformersOptimization", "model_type": "gpt2", "optimization_options": opts}
    }
    load(_write(tmp_path, cfg))
    cfg["passes"]["o"]["optimization_options"] = {"enable_no_such_fusion": True}
    with pytest.raises(ConfigError) as info:
        load(_write(tmp_path, cfg))
    assert "enable_no_such_fusion" in str(info.value)


def test_data_script_import_failure_is_a_user_error_naming_script_key_and_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from olivine.cli.main import main
    from olivine.errors import UserScriptError

    (tmp_path / "data_script.py").write_text("import package_not_installed_here\n")
    data = {"name": "d", "user_script": "data_script.py", "load_dataset_config": {"type": "x"}}
    path = _write(tmp_path, _onnx_cfg(tmp_path, data_configs=[data]))
    with pytest.raises(UserScriptError) as info:
        load(path)
    assert info.value.path == "data_configs.0.user_script"
    assert str(tmp_path / "data_script.py") in info.value.message
    assert "package_not_installed_here" in info.value.message
    assert main(["run", "--config", str(path), "--local"]) == 2  # the user's to fix: not an internal error
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"olivine: error: {path}: data_configs.0.user_script: ")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("import torch\nimport package_not_installed_here.sub\n", "imports 'package_not_installed_here'"),
        ("def load(:\n", "syntax error at line 1"),
    ],
)
def test_model_script_that_cannot_import_is_refused_at_validation(
    tmp_path: Path, body: str, expected: str
) -> None:
    from olivine.errors import UserScriptError

    (tmp_path / "model_script.py").write_text(body)
    model = {
        "type": "PyTorchModel",
        "model_path": "x",
        "model_loader": "load",
        "model_script": "model_script.py",
    }
    with pytest.raises(UserScriptError) as info:
        load(_write(tmp_path, {"input_model": model, "passes": {"c": {"type": "OnnxConversion"}}}))
    assert info.value.path == "input_model.model_script"
    assert expected in info.value.message


def test_model_script_optional_and_local_imports_are_not_refused(tmp_path: Path) -> None:
    (tmp_path / "helper_module.py").write_text("X = 1\n")
    (tmp_path / "model_script.py").write_text(
        "import helper_module\nfrom olive.constants import Framework\n"
        "try:\n    import package_not_installed_here\nexcept ImportError:\n    pass\n"
        "def load(name):\n    import another_missing_package\n"
    )
    model = {
        "type": "PyTorchModel",
        "model_path": "x",
        "model_loader": "load",
        "model_script": "model_script.py",
    }
    load(_write(tmp_path, {"input_model": model, "passes": {"c": {"type": "OnnxConversion"}}}))


def test_transformers_optimization_without_a_model_type_is_skipped_as_olive_does(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import onnx

    cfg = _onnx_cfg(tmp_path)
    cfg["passes"] = {"ort": {"type": "OrtTransformersOptimization", "model_type": "", "opt_level": 1}}
    with caplog.at_level("WARNING", logger="olivine"):
        result = run_local(load(_write(tmp_path, cfg)))
    assert result.best is not None
    assert any("the pass is skipped, as in Olive" in r.message for r in caplog.records)
    source = onnx.load(str(tmp_path / "onnx" / "model.onnx"))
    output = onnx.load(str(result.best.model.onnx_path))
    assert [n.op_type for n in output.graph.node] == [n.op_type for n in source.graph.node]


# ------------------------------------------------------------------ HuggingfaceContainer by the model's task


def _text_gen_cfg(tmp_path: Path, **pre: Any) -> dict[str, Any]:
    from tiny_models import write_tiny_llama

    rows = [{"text": f"the quick brown fox number {i} jumps over the lazy dog"} for i in range(12)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = {
        "name": "gen",
        "type": "HuggingfaceContainer",
        "load_dataset_config": {"data_name": "json", "data_files": "train.jsonl", "split": "train"},
        # No input_cols and no type: Olive fills the model's task in, which picks its text-generation step.
        "pre_process_data_config": {"max_seq_len": 8, "max_samples": 5, **pre},
    }
    model = write_tiny_llama(tmp_path / "llama")
    return {"input_model": model, "data_configs": [data], "passes": {}}


def test_huggingface_container_takes_the_models_text_generation_pre_processing(tmp_path: Path) -> None:
    from olivine.data.pipeline import build_dataloader

    workflow = load(_write(tmp_path, _text_gen_cfg(tmp_path)))
    dc = workflow.data_configs["gen"]
    assert dc.pre_process_data_config is not None
    assert dc.pre_process_data_config.params["task"] == "text-generation"
    batches = list(build_dataloader(dc, tokenizer_path=str(tmp_path / "llama"), base_dir=tmp_path))
    assert len(batches) == 5
    inputs, labels = batches[0]
    assert sorted(inputs) == ["attention_mask", "input_ids"]
    assert inputs["input_ids"].shape == (1, 8) and (inputs["attention_mask"] == 1).all()
    assert labels is not None and (labels == inputs["input_ids"]).all()


def test_text_generation_line_by_line_pads_and_masks_labels(tmp_path: Path) -> None:
    from olivine.data.pipeline import build_dataloader

    cfg = _text_gen_cfg(tmp_path, strategy="line-by-line", max_seq_len=32, add_special_tokens=False)
    workflow = load(_write(tmp_path, cfg))
    batches = list(build_dataloader(workflow.data_configs["gen"], tokenizer_path=str(tmp_path / "llama")))
    inputs, labels = batches[0]
    assert inputs["input_ids"].shape == (1, 32)
    padding = inputs["attention_mask"] == 0
    assert padding.any() and (labels[padding] == -100).all()


def test_text_generation_columns_are_checked_against_the_local_file_at_validation(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(_write(tmp_path, _text_gen_cfg(tmp_path, text_cols=["body"])))
    assert info.value.path == "data_configs.0.pre_process_data_config.params.text_cols"
    assert "column 'body' is not in" in info.value.message and "train.jsonl" in info.value.message


def test_model_builder_extra_options_are_handed_over_as_strings(tmp_path: Path) -> None:
    # A recipe writes include_hidden_states: 1; the builder parses --extra_options strings ("1").
    from olivine.model.handle import ModelHandle
    from olivine.passes.model_builder import ModelBuilderConfig, _builder_options

    cfg = ModelBuilderConfig.model_validate(
        {"precision": "int4", "extra_options": {"include_hidden_states": 1, "int4_accuracy_level": 0}}
    )
    options = _builder_options(cfg, ModelHandle(kind="hf", config={"model_path": str(tmp_path)}))
    assert options["include_hidden_states"] == "1" and options["int4_accuracy_level"] == "0"


def test_model_builder_extra_options_lists_are_joined_as_olive_joins_them(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from olivine.model.handle import ModelHandle
    from olivine.passes.model_builder import ModelBuilderConfig, _builder_options, _unquantizable_ops

    given = {
        "int4_op_types_to_quantize": ["MatMul", "Gather"],
        "int4_nodes_to_exclude": ["/lm_head/MatMul", "/model/layers.0/attn/qkv_proj/MatMul"],
    }
    cfg = ModelBuilderConfig.model_validate({"precision": "int4", "extra_options": given})
    options = _builder_options(cfg, ModelHandle(kind="hf", config={"model_path": str(tmp_path)}))
    assert options["int4_op_types_to_quantize"] == "MatMul/Gather"
    assert options["int4_nodes_to_exclude"] == "/lm_head/MatMul,/model/layers.0/attn/qkv_proj/MatMul"
    for bad in (
        {"int4_nodes_to_exclude": ["a,b"]},
        {"exclude_embeds": [True]},
        {"int4_op_types_to_quantize": "MatMul//Gather"},
        {"nodes_to_exclude": []},
    ):
        with pytest.raises(ValidationError) as info:
            ModelBuilderConfig.model_validate({"precision": "int4", "extra_options": bad})
        assert f"extra_options.{next(iter(bad))}" in str(info.value)
    for top in ({"int4_op_types_to_quantize": []}, {"int4_nodes_to_exclude": ["", "x"]}):
        with pytest.raises(ValidationError, match=next(iter(top))):
            ModelBuilderConfig.model_validate({"precision": "int4", **top})
    # An olive-recipes config names a dummy op type on purpose (an int4 build that quantizes nothing): it
    # is taken, and the run says what it means.
    dummy = ModelBuilderConfig.model_validate(
        {"precision": "int4", "int4_op_types_to_quantize": ["DummyOPType"]}
    )
    assert _unquantizable_ops(dummy) == ("int4_op_types_to_quantize", ["DummyOPType"])
    typo = ModelBuilderConfig.model_validate(
        {"precision": "int4", "extra_options": {"op_types_to_quantize": "Matmul"}}
    )
    assert _unquantizable_ops(typo) == ("op_types_to_quantize", ["Matmul"])


def test_data_configs_as_a_mapping_is_refused_as_olives_removed_format(tmp_path: Path) -> None:
    cfg = _onnx_cfg(tmp_path, data_configs={"d": {"type": "DummyDataContainer"}})
    with pytest.raises(ConfigError) as info:
        load(_write(tmp_path, cfg))
    assert info.value.path == "data_configs"
    assert "removed in Olive 0.6" in info.value.message


def test_misspelled_execution_provider_is_named_as_unknown_with_a_suggestion(tmp_path: Path) -> None:
    system = {
        "type": "LocalSystem",
        "accelerators": [{"device": "cpu", "execution_providers": ["CUDAExecutionProvidr"]}],
    }
    cfg = _onnx_cfg(tmp_path, systems={"s": system}, target="s")
    with pytest.raises(ConfigError) as info:
        load(_write(tmp_path, cfg))
    assert info.value.path == "systems.s.accelerators.0.execution_providers"
    assert "unknown execution provider 'CUDAExecutionProvidr'; did you mean 'CUDAExecutionProvider'?" in str(
        info.value
    )


def test_model_config_path_of_align_labels_is_a_bundled_local_folder(tmp_path: Path) -> None:
    from tiny_models import write_tiny_bert

    write_tiny_bert(tmp_path / "labels_model")
    (tmp_path / "rows.csv").write_text("text,label\nhello there,0\n")
    data = {
        "name": "d",
        "type": "HuggingfaceContainer",
        "load_dataset_config": {"data_name": "csv", "data_files": "rows.csv", "split": "train"},
        "pre_process_data_config": {
            "input_cols": ["text"],
            "align_labels": True,
            "model_config_path": "labels_model",
            "model_name": "labels_model",
        },
    }
    workflow = load(_write(tmp_path, _onnx_cfg(tmp_path, data_configs=[data])))
    files = dict(workflow.local_files())
    key = "data_configs.0.pre_process_data_config.params.model_config_path"
    assert files[key] == tmp_path / "labels_model"


@pytest.mark.parametrize(
    ("extra", "path", "expected"),
    [
        (
            {"input_model": {"type": "DiffusersModel", "model_path": "x"}},
            "input_model.type",
            "'DiffusersModel'",
        ),
        ({"builds": {"a": {"pipeline": ["peephole"]}}}, "builds", "multi-build"),
    ],
)
def test_olive_only_model_types_and_multi_builds_are_refused_by_name(
    tmp_path: Path, extra: dict[str, Any], path: str, expected: str
) -> None:
    from olivine.errors import NotSupportedError

    with pytest.raises(NotSupportedError) as info:
        load(_write(tmp_path, {**_onnx_cfg(tmp_path), **extra}))
    assert info.value.path == path
    assert expected in info.value.message and "not supported by Olivine" in info.value.message


def test_unknown_top_level_key_lists_only_keys_a_user_may_write(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(_write(tmp_path, {**_onnx_cfg(tmp_path), "no_such_key_anywhere": 1}))
    assert "allowed: " in info.value.message and "olive_only_systems" not in info.value.message


@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"type": "OrtTransformersOptimization", "model_type": "bert", "use_gpu": True}, "passes.p.use_gpu"),
        ({"type": "GraphSurgeries", "surgeries": [{"surgeon": "NoSuchSurgeon"}]}, "passes.p.surgeries.0"),
    ],
)
def test_pass_cross_field_errors_put_their_key_in_the_key_path(
    tmp_path: Path, params: dict[str, Any], path: str
) -> None:
    cfg = _onnx_cfg(tmp_path)
    cfg["passes"] = {"p": params}
    with pytest.raises(ConfigError) as info:
        load(_write(tmp_path, cfg))
    assert info.value.path == path
    assert str(info.value).startswith(f"{tmp_path / 'cfg.json'}: {path}: ")


def test_graph_surgeries_declare_the_contrib_domains_their_functions_use(tmp_path: Path) -> None:
    # PackedAttentionToLoopMHA adds a function whose Loop body uses com.microsoft.MultiHeadAttention; on a
    # model with no packed attention (a recipe run on another model) that function must still be valid.
    import onnx

    cfg = _onnx_cfg(tmp_path)
    cfg["passes"] = {"gs": {"type": "GraphSurgeries", "surgeries": [{"surgeon": "PackedAttentionToLoopMHA"}]}}
    result = run_local(load(_write(tmp_path, cfg)))
    assert result.best is not None
    proto = onnx.load(str(result.best.model.onnx_path))
    for function in proto.functions:
        assert "com.microsoft" in {o.domain for o in function.opset_import}
    onnx.checker.check_model(proto)


def test_feature_extraction_model_keeps_label_col_after_olives_task_fill_in(tmp_path: Path) -> None:
    from olivine.data.pipeline import build_dataloader
    from tiny_models import write_tiny_bert

    model = write_tiny_bert(tmp_path / "bert")  # task feature-extraction: tokenizer_pre_process in Olive
    (tmp_path / "rows.csv").write_text("text,label\nhello there,1\nall good,0\n")
    data = {
        "name": "d",
        "type": "HuggingfaceContainer",
        "load_dataset_config": {"data_name": "csv", "data_files": "rows.csv", "split": "train"},
        "pre_process_data_config": {"input_cols": ["text"], "label_col": "label", "max_length": 8},
    }
    workflow = load(_write(tmp_path, {"input_model": model, "data_configs": [data], "passes": {}}))
    dc = workflow.data_configs["d"]
    assert dc.pre_process_data_config is not None
    assert dc.pre_process_data_config.params["task"] == "feature-extraction"
    _, labels = next(iter(build_dataloader(dc, tokenizer_path=str(tmp_path / "bert"))))
    assert labels is not None and labels.tolist() == [1]


# ------------------------------------------------------------------ PyTorchModel io_config.kv_cache

_KV_SCRIPT = """
import torch

LAYERS, HEADS, HIDDEN = 2, 2, 8


class TinyKV(torch.nn.Module):
    # A decoder step: keys/values of the new tokens appended to each layer's past (Olive's legacy layout).
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(16, HIDDEN)
        self.kv = torch.nn.ModuleList(torch.nn.Linear(HIDDEN, 2 * HIDDEN) for _ in range(LAYERS))
        self.head = torch.nn.Linear(HIDDEN, 16)

    def forward(self, input_ids, attention_mask, past_key_values):
        x = self.embed(input_ids)
        batch, seq, _ = x.shape
        present = []
        for layer, (past_k, past_v) in zip(self.kv, past_key_values):
            k, v = layer(x).view(batch, seq, 2, HEADS, HIDDEN // HEADS).permute(2, 0, 3, 1, 4)
            k, v = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
            present.append((k, v))
            x = x + k.mean(dim=2).flatten(1).unsqueeze(1) * attention_mask[:, -seq:, None]
        return self.head(x), present


def load(model_path=None):
    return TinyKV()
"""


def _kv_model(tmp_path: Path, kv_cache: Any) -> dict[str, Any]:
    (tmp_path / "kv_script.py").write_text(_KV_SCRIPT)
    return {
        "type": "PyTorchModel",
        "model_loader": "load",
        "model_script": "kv_script.py",
        "io_config": {
            "input_names": ["input_ids", "attention_mask"],
            "input_shapes": [[2, 3], [2, 7]],
            "input_types": ["int64", "int64"],
            "output_names": ["logits"],
            "dynamic_axes": {
                "input_ids": {"0": "batch_size", "1": "sequence_length"},
                "attention_mask": {"0": "batch_size", "1": "total_sequence_length"},
            },
            "kv_cache": kv_cache,
        },
    }


def test_pytorch_kv_cache_io_config_exports_past_and_present_per_layer_as_olive_names_them(
    tmp_path: Path,
) -> None:
    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch

    from olivine.model.loaders import import_script

    kv = {"num_hidden_layers": 2, "num_attention_heads": 2, "hidden_size": 8}
    cfg = {
        "input_model": _kv_model(tmp_path, kv),
        "passes": {"conversion": {"type": "OnnxConversion", "target_opset": 17}},
    }
    result = run_local(load(_write(tmp_path, cfg)), cache_dir=tmp_path / "cache", output_dir=tmp_path / "out")
    assert result.best is not None
    proto = onnx.load(str(result.best.model.onnx_path))
    past = [
        "past_key_values.0.key",
        "past_key_values.0.value",
        "past_key_values.1.key",
        "past_key_values.1.value",
    ]
    present = ["present.0.key", "present.0.value", "present.1.key", "present.1.value"]
    assert [i.name for i in proto.graph.input] == ["input_ids", "attention_mask", *past]
    assert [o.name for o in proto.graph.output] == ["logits", *present]
    # past_sequence_length = attention mask length - input ids length (Olive's get_past_seq_len): 7 - 3
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[2].type.tensor_type.shape.dim]
    assert dims == ["batch_size", 2, "past_sequence_length", 4]
    # The exported graph computes what the module does, with a past of another length than the dummy's.
    module = import_script(tmp_path / "kv_script.py").load()
    ids = torch.tensor([[1, 2], [3, 4], [5, 6]])
    mask = torch.ones(3, 7, dtype=torch.int64)
    pkv = [(torch.rand(3, 2, 5, 4), torch.rand(3, 2, 5, 4)) for _ in range(2)]
    with torch.no_grad():
        logits, pres = module(ids, mask, pkv)
    feed = {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
    feed.update({name: t.numpy() for name, t in zip(past, [t for pair in pkv for t in pair], strict=True)})
    session = ort.InferenceSession(str(result.best.model.onnx_path), providers=["CPUExecutionProvider"])
    out = session.run(None, feed)
    assert np.allclose(out[0], logits.numpy(), atol=1e-5)
    assert out[1].shape == (3, 2, 7, 4) and np.allclose(out[1], pres[0][0].numpy(), atol=1e-5)


def test_pytorch_kv_cache_without_the_models_numbers_is_refused_at_validation(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(_write(tmp_path, {"input_model": _kv_model(tmp_path, True), "passes": {}}))
    assert (
        "io_config.kv_cache needs num_hidden_layers, num_attention_heads, hidden_size" in info.value.message
    )
    # ...which model_attributes may give, under Olive's aliases (n_layer, n_head, n_embd).
    model = _kv_model(tmp_path, True)
    model["model_attributes"] = {"n_layer": 2, "n_head": 2, "n_embd": 8}
    assert load(_write(tmp_path, {"input_model": model, "passes": {}})).config.input_model.io_config.kv_cache


_FORMAT_SCRIPT = """
def qa_text(example):
    return f"Question: {example['question']} Answer: {example['answer']}"
"""


def test_text_formatting_func_of_the_components_user_script_builds_each_rows_text(tmp_path: Path) -> None:
    from olivine.data.hf import load_tokenizer
    from olivine.data.pipeline import build_dataloader

    (tmp_path / "formatting.py").write_text(_FORMAT_SCRIPT)
    rows = [{"question": f"what is {i} plus {i}", "answer": str(2 * i)} for i in range(4)]
    cfg = _text_gen_cfg(
        tmp_path,
        strategy="line-by-line",
        max_seq_len=40,
        add_special_tokens=False,
        text_formatting_func="qa_text",
        user_script="formatting.py",
    )
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))  # no 'text' column
    workflow = load(_write(tmp_path, cfg))
    keys = [key for key, _ in workflow.local_files()]
    assert "data_configs.0.pre_process_data_config.params.user_script" in keys  # bundled for remote hosts
    batches = list(build_dataloader(workflow.data_configs["gen"], tokenizer_path=str(tmp_path / "llama")))
    tokenizer = load_tokenizer(None, str(tmp_path / "llama"), None)
    expected = tokenizer("Question: what is 0 plus 0 Answer: 0", add_special_tokens=False)["input_ids"]
    inputs, _ = batches[0]
    assert inputs["input_ids"][0][inputs["attention_mask"][0] == 1].tolist() == expected


def test_text_formatting_func_is_refused_at_validation_without_its_script_or_function(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(_write(tmp_path, _text_gen_cfg(tmp_path, text_formatting_func="qa_text")))
    assert "user_script must be provided if text_formatting_func is a name string" in info.value.message
    (tmp_path / "formatting.py").write_text(_FORMAT_SCRIPT)
    cfg = _text_gen_cfg(tmp_path, text_formatting_func="qa_txt", user_script="formatting.py")
    with pytest.raises(ConfigError) as info:
        load(_write(tmp_path, cfg))
    assert info.value.path == "data_configs.0.pre_process_data_config.params.text_formatting_func"
    assert "'qa_txt' is not a function of user_script" in info.value.message
    assert info.value.message.endswith("formatting.py")


def test_text2text_generation_with_past_is_refused_at_validation_naming_the_task(tmp_path: Path) -> None:
    from tiny_models import write_tiny_bert

    model = write_tiny_bert(tmp_path / "bert")
    model["task"] = "text2text-generation-with-past"
    cfg = {"input_model": model, "passes": {"conversion": {"type": "OnnxConversion"}}}
    with pytest.raises(ConfigError) as info:
        load(_write(tmp_path, cfg))
    assert info.value.path == "input_model.task"
    message = info.value.message
    assert "task 'text2text-generation-with-past' (an encoder-decoder model" in message
    assert "supported: audio-classification" in message and "text2text-generation," not in message


@pytest.mark.parametrize(
    ("task", "cache"),
    [("seq2seq-lm-with-past", True), ("text2text-generation", True), ("seq2seq-lm", False)],
)
def test_encoder_decoder_tasks_and_olive_synonyms_are_refused_at_validation(
    tmp_path: Path, task: str, cache: bool
) -> None:
    from tiny_models import write_tiny_bert

    model = {**write_tiny_bert(tmp_path / "bert"), "task": task}
    cfg = {"input_model": model, "passes": {"conversion": {"type": "OnnxConversion"}}}
    with pytest.raises(ConfigError) as info:
        load(_write(tmp_path, cfg))
    assert info.value.path == "input_model.task"
    line = str(info.value)
    assert "\n" not in line and line.startswith(str(tmp_path / "cfg.json"))
    assert f"task '{task}' (an encoder-decoder model exported" in line
    assert ("with its KV cache" in line) == cache


def test_olive_synonym_causal_lm_with_past_exports_with_the_kv_cache(tmp_path: Path) -> None:
    import onnxruntime as ort

    from tiny_models import write_tiny_llama

    model = {**write_tiny_llama(tmp_path / "llama"), "task": "causal-lm-with-past"}
    cfg = {"input_model": model, "passes": {"conversion": {"type": "OnnxConversion"}}}
    run_local(load(_write(tmp_path, cfg)), cache_dir=tmp_path / "cache", output_dir=tmp_path / "out")
    session = ort.InferenceSession(
        str(tmp_path / "out" / "model" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    inputs = [i.name for i in session.get_inputs()]
    assert inputs[:2] == ["input_ids", "attention_mask"] and "past_key_values.1.value" in inputs
    assert "present.1.key" in [o.name for o in session.get_outputs()]


def test_text_generation_export_with_olives_default_exporter_falls_back_to_dynamo(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import numpy as np
    import onnxruntime as ort
    import torch
    from transformers import AutoModelForCausalLM

    from tiny_models import write_tiny_llama

    model = write_tiny_llama(tmp_path / "llama")  # task text-generation: no KV cache
    cfg = {"input_model": model, "passes": {"conversion": {"type": "OnnxConversion"}}}
    with caplog.at_level("WARNING", logger="olivine"):
        run_local(load(_write(tmp_path, cfg)), cache_dir=tmp_path / "cache", output_dir=tmp_path / "out")
    session = ort.InferenceSession(
        str(tmp_path / "out" / "model" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask"]
    ids = np.array([[5, 6, 7, 8, 9]], dtype=np.int64)
    (logits, *_) = session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})
    torch_model = AutoModelForCausalLM.from_pretrained(tmp_path / "llama").eval()
    with torch.no_grad():
        expected = torch_model(input_ids=torch.from_numpy(ids), use_cache=False).logits.numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-4)
    if any("TorchScript exporter failed" in r.getMessage() for r in caplog.records):
        assert any("dynamo exporter instead" in r.getMessage() for r in caplog.records)


def test_external_data_keys_on_a_pass_without_them_are_ignored_with_a_warning_as_olive_does(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from tiny_models import write_tiny_llama

    # Olive's docs (build-workflow.md) put save_as_external_data on ModelBuilder, which has no such key.
    model = write_tiny_llama(tmp_path / "llama")
    cfg = {
        "input_model": model,
        "passes": {"mb": {"type": "ModelBuilder", "precision": "fp32", "save_as_external_data": True}},
    }
    with caplog.at_level("WARNING", logger="olivine"):
        workflow = load(_write(tmp_path, cfg))
    (option,) = workflow.slots[0].options
    assert "save_as_external_data" not in option.fixed
    assert any("passes.mb.save_as_external_data ignored" in r.getMessage() for r in caplog.records)
    cfg["passes"]["mb"] = {"type": "ModelBuilder", "precision": "fp32", "save_as_externl_data": True}
    with pytest.raises(ConfigError) as info:
        load(_write(tmp_path, cfg))
    assert info.value.path == "passes.mb.save_as_externl_data"


def test_fixed_pass_config_the_cpu_cannot_run_is_refused_at_validation(tmp_path: Path) -> None:
    from tiny_models import write_tiny_llama

    cfg = {
        "input_model": write_tiny_llama(tmp_path / "llama"),
        "passes": {"mb": {"type": "ModelBuilder", "precision": "fp16"}},
    }
    with pytest.raises(ConfigError) as info:
        load(_write(tmp_path, cfg))  # what --dry-run calls: refused before anything runs
    assert info.value.path == "passes.mb"
    assert "precision fp16 is not supported on the CPU execution provider" in info.value.message
    assert str(info.value).startswith(str(tmp_path / "cfg.json"))


def _mlp_with_weight_named(folder: Path, name: str) -> Path:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(
        np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32), name
    )
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", name], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 64])],
        [weight],
    )
    folder.mkdir(parents=True)
    path = folder / "mlp.onnx"
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_external_data_name_of_an_olivine_output_file_is_refused_at_validation(tmp_path: Path) -> None:
    cfg = {
        "input_model": {"type": "ONNXModel", "model_path": str(_mlp_with_weight_named(tmp_path / "m", "w"))},
        "passes": {
            "p": {
                "type": "OnnxPeepholeOptimizer",
                "save_as_external_data": True,
                "external_data_name": "olivine.log",
            }
        },
        "output_dir": str(tmp_path / "out" / "final.onnx"),
    }
    with pytest.raises(ConfigError) as caught:
        load(_write(tmp_path, cfg))
    assert "passes.p.external_data_name" in str(caught.value)
    assert "Olivine writes in the output folder" in str(caught.value)


def test_a_data_file_named_like_an_output_record_is_refused_before_anything_is_copied(tmp_path: Path) -> None:
    """With output_dir naming a model file, a per-tensor data file called model_config.json would be
    overwritten by the run's record (the run reported success with a broken model)."""
    from olivine.errors import WorkflowError

    source = _mlp_with_weight_named(tmp_path / "m", "model_config.json")
    cfg = {
        "input_model": {"type": "ONNXModel", "model_path": str(source)},
        "passes": {
            "p": {
                "type": "OnnxPeepholeOptimizer",
                "save_as_external_data": True,
                "all_tensors_to_one_file": False,
                "size_threshold": 0,
            }
        },
        "output_dir": str(tmp_path / "out" / "final.onnx"),
        "cache_dir": str(tmp_path / "cache"),
    }
    with pytest.raises(WorkflowError, match=r"'model_config\.json' would collide"):
        run_local(load(_write(tmp_path, cfg)))
    assert not (tmp_path / "out" / "final.onnx").exists()
    assert not (tmp_path / "out" / "model_config.json").exists()


def test_an_error_inside_a_list_valued_parameter_carries_no_search_hint(tmp_path: Path) -> None:
    """The search hint is for a list given to a one-value parameter, not for a parameter that is a list."""
    source = _mlp_with_weight_named(tmp_path / "m", "w")
    for params, key in (
        ({"type": "GraphSurgeries", "surgeries": [{"surgeon": "Frobnicate"}]}, "passes.p.surgeries.0"),
        ({"type": "DynamicToFixedShape", "dim_param": ["b", "b"], "dim_value": [1, 2]}, "passes.p.dim_param"),
    ):
        cfg = {"input_model": {"type": "ONNXModel", "model_path": str(source)}, "passes": {"p": params}}
        with pytest.raises(ConfigError) as caught:
            load(_write(tmp_path, cfg))
        assert key in str(caught.value) and "search" not in str(caught.value), str(caught.value)
    cfg = {
        "input_model": {"type": "ONNXModel", "model_path": str(source)},
        "passes": {"p": {"type": "OnnxBlockWiseRtnQuantization", "block_size": [32, 64]}},
    }
    with pytest.raises(ConfigError, match="search"):  # a list for a one-value parameter: the hint stays
        load(_write(tmp_path, cfg))


@pytest.mark.parametrize(
    ("hf_type", "message"),
    [
        ("xlm-roberta", "is not one onnxruntime's transformer optimizer knows: the pass is skipped"),
        ("phi3", "model_type phi without ONNX functions (not a dynamo export): optimized as bert"),
    ],
)
def test_an_inferred_model_type_follows_olives_rules(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, hf_type: str, message: str
) -> None:
    """Olive skips the pass for a model type the optimizer does not know, and optimizes a phi model
    without ONNX functions as bert; Olivine failed the workflow (and crashed inside the phi optimizer)."""
    cfg = _onnx_cfg(tmp_path)
    cfg["input_model"]["model_attributes"] = {"model_type": hf_type}
    cfg["passes"] = {"ort": {"type": "OrtTransformersOptimization"}}
    with caplog.at_level("INFO", logger="olivine"):
        result = run_local(load(_write(tmp_path, cfg)))
    assert result.best is not None and result.best.model is not None
    assert any(message in r.getMessage() for r in caplog.records)


def test_a_model_type_written_in_the_config_is_checked_before_anything_runs(tmp_path: Path) -> None:
    cfg = _onnx_cfg(tmp_path)
    cfg["passes"] = {"ort": {"type": "OrtTransformersOptimization", "model_type": "frob"}}
    with pytest.raises(ConfigError) as caught:
        load(_write(tmp_path, cfg))
    assert "passes.ort" in str(caught.value) and "'frob'" in str(caught.value) and "bert" in str(caught.value)


def test_an_encoder_decoder_model_without_decoder_inputs_is_explained(tmp_path: Path) -> None:
    from transformers import T5Config, T5Model

    from olivine.errors import PassRunError

    folder = tmp_path / "t5"
    config = T5Config(vocab_size=100, d_model=32, d_kv=16, d_ff=64, num_layers=1, num_heads=2)
    T5Model(config).save_pretrained(str(folder))
    cfg = {
        "input_model": {"type": "HfModel", "model_path": str(folder), "task": "feature-extraction"},
        "passes": {"conversion": {"type": "OnnxConversion"}},
    }
    with pytest.raises(PassRunError, match="'t5' is an encoder-decoder model: Olivine exports one graph"):
        run_local(load(_write(tmp_path, cfg)), cache_dir=tmp_path / "cache", output_dir=tmp_path / "out")
