"""Olive's TransformersTokenDummyDataContainer for an ONNX model with past key/value inputs and no tokenizer
folder given (a pass's data after ModelBuilder): the cache layout is read from the model's own
``config.json``."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
from onnx import TensorProto, helper

from olivine.config.data import DataConfig
from olivine.data.pipeline import build_dataloader
from olivine.model.handle import ModelHandle


def _model_with_past(folder: Path) -> ModelHandle:
    folder.mkdir(parents=True)
    names = ["input_ids", "attention_mask", "past_key_values.0.key", "past_key_values.0.value"]
    types = [TensorProto.INT64, TensorProto.INT64, TensorProto.FLOAT, TensorProto.FLOAT]
    inputs = [helper.make_tensor_value_info(n, t, None) for n, t in zip(names, types, strict=True)]
    outputs = [helper.make_tensor_value_info(f"out.{i}", t, None) for i, t in enumerate(types)]
    nodes = [helper.make_node("Identity", [n], [f"out.{i}"]) for i, n in enumerate(names)]
    graph = helper.make_graph(nodes, "past", inputs, outputs)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), folder / "model.onnx")
    config = {"num_attention_heads": 4, "hidden_size": 32, "num_key_value_heads": 2, "vocab_size": 50}
    (folder / "config.json").write_text(json.dumps(config))
    return ModelHandle(kind="onnx", config={"model_path": str(folder), "onnx_file_name": "model.onnx"})


def test_past_inputs_take_the_cache_layout_from_the_models_own_config(tmp_path: Path) -> None:
    model = _model_with_past(tmp_path / "m")
    dc = DataConfig.model_validate({"name": "d", "type": "TransformersTokenDummyDataContainer"})
    inputs, _ = build_dataloader(dc, model=model).first_batch()
    assert sorted(inputs) == sorted(
        ["input_ids", "attention_mask", "past_key_values.0.key", "past_key_values.0.value"]
    )
    key = inputs["past_key_values.0.key"]
    assert key.shape[1] == 2 and key.shape[3] == 8  # kv heads, head_dim = 32 / 4
    assert int(inputs["input_ids"].max()) < 50  # the vocabulary of the same config
