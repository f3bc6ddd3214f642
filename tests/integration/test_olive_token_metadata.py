"""Olive's ``OnnxConversion.save_metadata_for_token_generation``: the HF model's config, generation config and
tokenizer files written beside ``model.onnx`` (Olive's ``HfMixin.save_metadata``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from olivine.api import load, run_local
from olivine.model.handle import ModelHandle
from olivine.passes.base import PASSES, PassContext
from tiny_llm import write_causal_lm
from tiny_models import handle, write_mlp, write_tiny_bert

pytestmark = pytest.mark.integration


def _llm(folder: Path) -> dict[str, Any]:
    # Olive's default task for an HfModel; its export (dynamo, with the KV cache) is what token generation
    # runs. (torch 2.13's TorchScript exporter fails on transformers 4.57's Llama masks.)
    return {**write_causal_lm(folder), "task": "text-generation-with-past"}


def _convert(model: dict[str, Any], out: Path, **params: Any) -> ModelHandle:
    cls = PASSES.get("OnnxConversion")
    config = cls.config_class.model_validate(params)
    out.mkdir(parents=True, exist_ok=True)
    return cls().run(handle(model), config, out, PassContext())


def test_conversion_writes_config_generation_config_and_tokenizer_beside_the_model(tmp_path: Path) -> None:
    import onnxruntime as ort
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    source = tmp_path / "llm"
    model = _llm(source)
    assert AutoTokenizer.from_pretrained(source).pad_token is None  # Olive then pads with EOS
    out = _convert(model, tmp_path / "out", save_metadata_for_token_generation=True)
    folder = tmp_path / "out"
    assert Path(str(out.onnx_path)).parent == folder
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "generation_config.json", "tokenizer_config.json", "tokenizer.json"} <= names
    config = AutoConfig.from_pretrained(folder)
    assert (config.model_type, config.num_hidden_layers) == ("llama", 2)
    generation = GenerationConfig.from_pretrained(folder)
    assert (generation.bos_token_id, generation.eos_token_id) == (1, 2)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.pad_token == tokenizer.eos_token == "</s>"
    assert (
        tokenizer("hello world").input_ids == AutoTokenizer.from_pretrained(source)("hello world").input_ids
    )
    ort.InferenceSession(str(out.onnx_path), providers=["CPUExecutionProvider"])


def test_conversion_without_the_option_writes_only_the_model(tmp_path: Path) -> None:
    model = _llm(tmp_path / "llm")
    _convert(model, tmp_path / "out")
    assert not (tmp_path / "out" / "tokenizer_config.json").exists()
    assert not (tmp_path / "out" / "generation_config.json").exists()


def test_metadata_of_an_encoder_has_no_generation_config(tmp_path: Path) -> None:
    model = write_tiny_bert(tmp_path / "bert")
    _convert(model, tmp_path / "out", save_metadata_for_token_generation=True)
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"config.json", "tokenizer_config.json", "vocab.txt"} <= names
    assert "generation_config.json" not in names


def test_metadata_option_is_ignored_for_a_pytorch_model_as_in_olive(tmp_path: Path) -> None:
    mlp = write_mlp(tmp_path / "mlp")
    _convert(mlp, tmp_path / "out", save_metadata_for_token_generation=True)
    assert sorted(p.suffix for p in (tmp_path / "out").iterdir()) == [".onnx"]


def test_olive_config_with_token_metadata_runs_and_the_output_carries_the_files(tmp_path: Path) -> None:
    model = _llm(tmp_path / "llm")
    cfg = {
        "input_model": model,
        "passes": {
            "conversion": {"type": "OnnxConversion", "save_metadata_for_token_generation": True},
            "quantization": {"type": "OnnxDynamicQuantization"},
        },
        "output_dir": "out",
    }
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    result = run_local(load(tmp_path / "cfg.json"), cache_dir=tmp_path / "cache", output_dir=tmp_path / "out")
    assert result.best is not None
    model_dir = tmp_path / "out" / "model"
    names = {p.name for p in model_dir.iterdir()}
    assert {"config.json", "generation_config.json", "tokenizer_config.json"} <= names
    saved = json.loads((tmp_path / "out" / "model_config.json").read_text())
    assert saved["type"].lower() == "onnxmodel"
