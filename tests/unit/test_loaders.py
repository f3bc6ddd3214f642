"""Loading PyTorch / Hugging Face handles as modules, and deriving their io_config and dummy inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from olivine.errors import ModelLoadError
from olivine.model.handle import ModelHandle
from olivine.model.loaders import (
    call_module,
    forward_order,
    get_dummy_inputs,
    get_io_config,
    hf_tokenizer_input_names,
    load_torch_module,
    torch_input_names,
)
from tiny_models import MLP_IN, MLP_OUT, handle, write_mlp, write_tiny_bert


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bert")
    write_tiny_bert(folder)
    return folder


def _pytorch(path: Path, **config: Any) -> ModelHandle:
    return ModelHandle(kind="pytorch", config={"model_path": str(path), **config})


def test_load_torch_module_calls_model_loader_and_returns_eval_module(tmp_path: Path) -> None:
    model = handle(write_mlp(tmp_path))
    module = load_torch_module(model)
    assert type(module).__name__ == "MLP"
    assert not module.training
    assert module(torch.ones(2, MLP_IN)).shape == (2, MLP_OUT)


def test_load_torch_module_reads_entire_model_file(tmp_path: Path) -> None:
    torch.save(torch.nn.Sequential(torch.nn.Linear(3, 2)), tmp_path / "m.pt")
    module = load_torch_module(_pytorch(tmp_path / "m.pt", model_file_format="PyTorch.EntireModel"))
    assert isinstance(module, torch.nn.Sequential)


def test_load_torch_module_reads_torchscript_file(tmp_path: Path) -> None:
    torch.jit.script(torch.nn.Sequential(torch.nn.Linear(3, 2))).save(str(tmp_path / "m.pt"))
    module = load_torch_module(_pytorch(tmp_path / "m.pt", model_file_format="PyTorch.TorchScript"))
    assert module(torch.ones(1, 3)).shape == (1, 2)


def test_load_torch_module_rejects_state_dict_without_loader(tmp_path: Path) -> None:
    torch.save(torch.nn.Linear(3, 2).state_dict(), tmp_path / "sd.pt")
    with pytest.raises(ModelLoadError, match="model_loader"):
        load_torch_module(_pytorch(tmp_path / "sd.pt", model_file_format="PyTorch.StateDict"))


def test_load_torch_module_wraps_loader_errors(tmp_path: Path) -> None:
    config = write_mlp(tmp_path)
    config["model_path"] = str(tmp_path / "missing.pt")
    with pytest.raises(ModelLoadError, match=r"missing\.pt") as info:
        load_torch_module(handle(config))
    assert info.value.__cause__ is not None


def test_load_torch_module_names_the_missing_function(tmp_path: Path) -> None:
    config = {**write_mlp(tmp_path), "model_loader": "no_such_loader"}
    with pytest.raises(ModelLoadError, match="no_such_loader"):
        load_torch_module(handle(config))


def test_load_torch_module_loads_hf_task_class(bert_dir: Path) -> None:
    base = load_torch_module(
        handle({"type": "HfModel", "model_path": str(bert_dir), "task": "feature-extraction"})
    )
    assert type(base).__name__ == "BertModel"
    classifier = load_torch_module(
        handle({"type": "HfModel", "model_path": str(bert_dir), "task": "text-classification"})
    )
    assert type(classifier).__name__ == "BertForSequenceClassification"


def test_load_torch_module_rejects_unknown_hf_task(bert_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="task 'translation' is not supported by Olivine"):
        load_torch_module(handle({"type": "HfModel", "model_path": str(bert_dir), "task": "translation"}))


def test_load_torch_module_rejects_hf_path_that_is_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="local folder"):
        load_torch_module(handle({"type": "HfModel", "model_path": str(tmp_path / "nope")}))


def test_load_torch_module_applies_hf_torch_dtype(bert_dir: Path) -> None:
    model = handle(
        {
            "type": "HfModel",
            "model_path": str(bert_dir),
            "task": "feature-extraction",
            "load_kwargs": {"torch_dtype": "float16"},
        }
    )
    module = load_torch_module(model)
    assert next(module.parameters()).dtype == torch.float16


def test_get_io_config_converts_json_axis_keys_to_int(tmp_path: Path) -> None:
    model = handle(write_mlp(tmp_path))
    io_config = get_io_config(model, load_torch_module(model))
    assert io_config["dynamic_axes"] == {"input": {0: "batch_size"}, "output": {0: "batch_size"}}
    assert io_config["input_names"] == ["input"]


def test_get_io_config_calls_function_named_in_script(tmp_path: Path) -> None:
    model = handle(write_mlp(tmp_path, io_config_func=True))
    assert get_io_config(model, load_torch_module(model))["output_names"] == ["output"]


def test_get_io_config_derives_hf_inputs_outputs_and_axes(bert_dir: Path) -> None:
    model = handle({"type": "HfModel", "model_path": str(bert_dir), "task": "feature-extraction"})
    io_config = get_io_config(model, load_torch_module(model))
    # forward's order, as Olive orders the inputs (BertModel.forward: input_ids, attention_mask, token_type_ids)
    assert io_config["input_names"] == ["input_ids", "attention_mask", "token_type_ids"]
    assert io_config["output_names"] == ["last_hidden_state", "pooler_output"]
    axes = io_config["dynamic_axes"]
    assert axes["attention_mask"] == {0: "batch_size", 1: "sequence_length"}
    assert axes["last_hidden_state"] == {0: "batch_size", 1: "sequence_length", 2: "hidden_size"}
    assert axes["pooler_output"] == {0: "batch_size"}


def test_a_causal_lm_without_tokenizer_files_gets_olives_text_generation_inputs(tmp_path: Path) -> None:
    # GPT-2's forward accepts token_type_ids, but neither its tokenizer nor Olive's text-generation template
    # gives them: a folder without tokenizer files is exported with input_ids and attention_mask only.
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=64, n_positions=32)
    GPT2LMHeadModel(config).save_pretrained(tmp_path / "gpt2")
    model = handle({"type": "HfModel", "model_path": str(tmp_path / "gpt2"), "task": "text-generation"})
    io_config = get_io_config(model, load_torch_module(model))
    assert io_config["input_names"] == ["input_ids", "attention_mask"]
    assert io_config["output_names"] == ["logits"]


def test_a_causal_lm_whose_tokenizer_lists_token_type_ids_is_exported_without_them(tmp_path: Path) -> None:
    # A plain PreTrainedTokenizerFast lists token_type_ids; GPT-2 would feed them through its token
    # embedding. Olive's text-generation template has none, so neither has the export.
    from transformers import GPT2Config, GPT2LMHeadModel

    from tiny_llm import write_tokenizer

    config = GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=400, n_positions=32)
    GPT2LMHeadModel(config).save_pretrained(tmp_path / "gpt2")
    write_tokenizer(tmp_path / "gpt2")
    model = handle({"type": "HfModel", "model_path": str(tmp_path / "gpt2"), "task": "text-generation"})
    assert "token_type_ids" in hf_tokenizer_input_names(model)
    io_config = get_io_config(model, load_torch_module(model))
    assert io_config["input_names"] == ["input_ids", "attention_mask"]


def test_kv_cache_inputs_follow_forward_and_the_total_length_has_olives_name(tmp_path: Path) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    from olivine.passes import kv_export

    config = GPT2Config(n_layer=2, n_embd=16, n_head=2, vocab_size=64, n_positions=32)
    io_config = kv_export.io_config(GPT2LMHeadModel(config))
    past = [f"past_key_values.{i}.{kv}" for i in range(2) for kv in ("key", "value")]
    # GPT2LMHeadModel.forward(input_ids, past_key_values, ..., attention_mask, ..., position_ids, ...)
    assert io_config["input_names"] == ["input_ids", *past, "attention_mask", "position_ids"]
    assert io_config["dynamic_axes"]["attention_mask"][1] == "past_sequence_length + sequence_length"
    assert io_config["dynamic_axes"]["present.0.key"][2] == "past_sequence_length + sequence_length"


def test_forward_order_keeps_unknown_names_last() -> None:
    assert forward_order(["b", "zz", "past.0", "a"], ["a", "past", "b"]) == ["a", "past.0", "b", "zz"]


def test_get_io_config_gives_classifier_logits_only_a_batch_axis(bert_dir: Path) -> None:
    model = handle({"type": "HfModel", "model_path": str(bert_dir), "task": "text-classification"})
    io_config = get_io_config(model, load_torch_module(model))
    assert io_config["output_names"] == ["logits"]
    assert io_config["dynamic_axes"]["logits"] == {0: "batch_size", 1: "num_labels"}  # Olive's template name


def test_get_io_config_rejects_malformed_io_config(tmp_path: Path) -> None:
    model = handle({**write_mlp(tmp_path), "io_config": {"output_names": ["y"]}})
    with pytest.raises(ModelLoadError, match="input_names"):
        get_io_config(model, load_torch_module(model))


def test_get_dummy_inputs_builds_from_shapes_and_types(tmp_path: Path) -> None:
    model = handle(write_mlp(tmp_path))
    module = load_torch_module(model)
    dummy = get_dummy_inputs(model, module, get_io_config(model, module))
    assert list(dummy) == ["input"]
    assert dummy["input"].shape == (2, MLP_IN) and dummy["input"].dtype == torch.float32


def test_get_dummy_inputs_prefers_dummy_inputs_func(tmp_path: Path) -> None:
    model = handle(write_mlp(tmp_path, dummy_inputs_func=True))
    module = load_torch_module(model)
    dummy = get_dummy_inputs(model, module, get_io_config(model, module))
    assert dummy["input"].shape == (3, MLP_IN)


def test_get_dummy_inputs_builds_hf_token_batch(bert_dir: Path) -> None:
    model = handle({"type": "HfModel", "model_path": str(bert_dir), "task": "feature-extraction"})
    module = load_torch_module(model)
    dummy = get_dummy_inputs(model, module, get_io_config(model, module))
    assert set(dummy) == {"input_ids", "token_type_ids", "attention_mask"}
    assert all(t.dtype == torch.int64 and t.dim() == 2 for t in dummy.values())
    assert int(dummy["input_ids"].max()) < module.config.vocab_size


def test_get_dummy_inputs_fails_without_any_source(tmp_path: Path) -> None:
    model = handle({**write_mlp(tmp_path), "io_config": {"input_names": ["input"]}})
    module = load_torch_module(model)
    with pytest.raises(ModelLoadError, match="input_shapes"):
        get_dummy_inputs(model, module, get_io_config(model, module))


def test_torch_input_names_follow_io_config(tmp_path: Path, bert_dir: Path) -> None:
    mlp = handle(write_mlp(tmp_path))
    assert torch_input_names(mlp, load_torch_module(mlp)) == ["input"]
    bert = handle({"type": "HfModel", "model_path": str(bert_dir), "task": "feature-extraction"})
    assert "attention_mask" in torch_input_names(bert, load_torch_module(bert))


def test_call_module_passes_positionally_when_names_differ_from_forward(tmp_path: Path) -> None:
    model = handle(write_mlp(tmp_path))
    module = load_torch_module(model)
    x = torch.ones(4, MLP_IN)
    with torch.inference_mode():
        assert torch.equal(call_module(module, ["input"], {"input": x}), module(x))


def test_kv_cache_extends_a_pytorch_io_config_as_olive_and_merges_past_inputs_for_forward() -> None:
    from olivine.model.loaders import extend_with_kv_cache, merge_past_key_values

    io = {
        "input_names": ["input_ids", "attention_mask"],
        "input_shapes": [[2, 3], [2, 7]],
        "input_types": ["int64", "int64"],
        "output_names": ["logits"],
        "kv_cache": True,
    }
    out = extend_with_kv_cache(io, {"n_layer": 2, "n_head": 2, "n_embd": 8})
    assert out["input_names"][2:] == [
        "past_key_values.0.key",
        "past_key_values.0.value",
        "past_key_values.1.key",
        "past_key_values.1.value",
    ]
    assert out["output_names"] == [
        "logits",
        "present.0.key",
        "present.0.value",
        "present.1.key",
        "present.1.value",
    ]
    # [batch (input_ids'), heads, past = attention mask length - input ids length, hidden / heads]
    assert out["input_shapes"][2:] == [[2, 2, 4, 4]] * 4 and out["input_types"][2:] == ["float32"] * 4
    assert out["dynamic_axes"]["past_key_values.1.value"] == {0: "batch_size", 2: "past_sequence_length"}
    assert out["dynamic_axes"]["present.0.key"] == {
        0: "batch_size",
        2: "past_sequence_length + sequence_length",
    }
    feed = {"input_ids": 1, "past_key_values.1.key": "k1", "past_key_values.0.value": "v0"}
    feed |= {"past_key_values.0.key": "k0", "past_key_values.1.value": "v1"}
    assert merge_past_key_values(feed) == {"input_ids": 1, "past_key_values": [("k0", "v0"), ("k1", "v1")]}
