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
        ("audio-classification", _tiny_wav2vec2, ["input_values"]),
        ("zero-shot-image-classification", _tiny_clip, ["input_ids", "attention_mask", "pixel_values"]),
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


def test_hf_model_without_task_takes_olives_default_and_is_refused_at_validation(tmp_path: Path) -> None:
    from tiny_models import write_tiny_llama

    model = write_tiny_llama(tmp_path / "llama")
    del model["task"]
    cfg = {"input_model": model, "passes": {"conversion": {"type": "OnnxConversion"}}}
    with pytest.raises(ConfigError) as info:
        load(_write(tmp_path, cfg))
    assert info.value.path == "input_model.task"
    assert "Olive's default 'text-generation-with-past'" in str(info.value)
    assert "task: text-generation" in str(info.value)


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
