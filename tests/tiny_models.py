"""Tiny models built in code for tests (never downloaded): an MLP as an Olive ``PyTorchModel``, the same
shape of MLP as an ``ONNXModel``, and a 2-layer BERT with its tokenizer as an ``HfModel``.

Each ``write_*`` function writes the files under ``folder`` and returns the Olive ``input_model`` dict.
Weights are seeded, so the files are the same on every call.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from olivine.model.handle import ModelHandle

MLP_IN, MLP_HIDDEN, MLP_OUT = 32, 128, 8

_MLP_SCRIPT = f'''"""A tiny MLP for Olivine tests (written by tests/tiny_models.py)."""
import torch


class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear({MLP_IN}, {MLP_HIDDEN})
        self.fc2 = torch.nn.Linear({MLP_HIDDEN}, {MLP_HIDDEN})
        self.fc3 = torch.nn.Linear({MLP_HIDDEN}, {MLP_OUT})

    def forward(self, x):
        # Explicit matmuls: a 2-D nn.Linear exports as Gemm, which dynamic quantization leaves alone.
        h = torch.relu(x @ self.fc1.weight.T + self.fc1.bias)
        h = torch.relu(h @ self.fc2.weight.T + self.fc2.bias)
        return h @ self.fc3.weight.T + self.fc3.bias


def load_model(model_path):
    model = MLP()
    model.load_state_dict(torch.load(model_path, weights_only=True))
    return model


IO_CONFIG = __IO_CONFIG__


def io_config(model):
    return IO_CONFIG


def dummy_inputs(model):
    return (torch.full((3, {MLP_IN}), 0.5),)
'''

MLP_IO_CONFIG: dict[str, Any] = {
    "input_names": ["input"],
    "input_shapes": [[2, MLP_IN]],
    "input_types": ["float32"],
    "output_names": ["output"],
    "dynamic_axes": {"input": {"0": "batch_size"}, "output": {"0": "batch_size"}},
}


def write_mlp(
    folder: Path, *, io_config_func: bool = False, dummy_inputs_func: bool = False
) -> dict[str, Any]:
    """A ``PyTorchModel``: state dict ``mlp.pt`` + ``mlp_script.py`` with ``load_model``.

    Args:
        folder: where to write the files.
        io_config_func: name the script's ``io_config`` function instead of giving the dict inline.
        dummy_inputs_func: name the script's ``dummy_inputs`` function (a batch of 3).
    """
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "mlp_script.py"
    script.write_text(_MLP_SCRIPT.replace("__IO_CONFIG__", repr(MLP_IO_CONFIG)))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        # Build from the script's own class so the state dict keys match what load_model expects.
        namespace: dict[str, Any] = {}
        exec(compile(script.read_text(), str(script), "exec"), namespace)
        torch.save(namespace["MLP"]().state_dict(), folder / "mlp.pt")
    model: dict[str, Any] = {
        "type": "PyTorchModel",
        "model_path": str(folder / "mlp.pt"),
        "model_file_format": "PyTorch.StateDict",
        "model_loader": "load_model",
        "model_script": str(script),
        "io_config": "io_config" if io_config_func else json.loads(json.dumps(MLP_IO_CONFIG)),
    }
    if dummy_inputs_func:
        model["dummy_inputs_func"] = "dummy_inputs"
    return model


def write_onnx_mlp(folder: Path) -> dict[str, Any]:
    """An ``ONNXModel`` MLP built with onnx.helper: input ``input`` [batch, 32] -> ``output`` [batch, 8].

    Node names are fixed (``fc1_matmul``, ``fc2_matmul``, ...) so tests can name nodes to exclude.
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    dims = [(MLP_IN, MLP_HIDDEN), (MLP_HIDDEN, MLP_HIDDEN), (MLP_HIDDEN, MLP_OUT)]
    nodes, inits = [], []
    current = "input"
    for i, (n_in, n_out) in enumerate(dims, start=1):
        w = (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(np.float32)
        b = (rng.standard_normal(n_out) * 0.1).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"fc{i}.weight"), numpy_helper.from_array(b, f"fc{i}.bias")]
        nodes.append(
            helper.make_node("MatMul", [current, f"fc{i}.weight"], [f"fc{i}_mm"], name=f"fc{i}_matmul")
        )
        last = i == len(dims)
        out = "output" if last else f"fc{i}_add"
        nodes.append(helper.make_node("Add", [f"fc{i}_mm", f"fc{i}.bias"], [out], name=f"fc{i}_add"))
        if not last:
            nodes.append(helper.make_node("Relu", [out], [f"fc{i}_relu"], name=f"fc{i}_relu"))
            current = f"fc{i}_relu"
    graph = helper.make_graph(
        nodes,
        "tiny_mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch_size", MLP_IN])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch_size", MLP_OUT])],
        initializer=inits,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.checker.check_model(proto)
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save_model(proto, str(folder / "model.onnx"))
    return {"type": "ONNXModel", "model_path": str(folder), "onnx_file_name": "model.onnx"}


# Whole words for the vocabulary (split in write_tiny_bert).
_WORDS = (
    "the a an is are was be to of and in on at for with by from it this that cat dog bird fish car "
    "house tree sun moon day night good bad big small red blue green run walk eat sleep read write "
    "happy sad fast slow old new hot cold sky sea river city road book music play work home"
)


def _write_wordpiece(folder: Path) -> Any:
    from transformers import BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        *letters,
        *(f"##{c}" for c in letters[:14]),
        *_WORDS.split(),
    ]
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=True)
    tokenizer.save_pretrained(str(folder))
    return tokenizer


def write_tiny_bert(folder: Path, *, max_positions: int = 64) -> dict[str, Any]:
    """An ``HfModel`` (feature-extraction): 2-layer BERT, hidden 32, 2 heads, ~100-token WordPiece vocab.

    Args:
        folder: where to write the model and tokenizer files.
        max_positions: the longest sequence the model takes (``max_position_embeddings``).
    """
    import torch
    from transformers import BertConfig, BertModel

    tokenizer = _write_wordpiece(folder)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_positions,
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        BertModel(config).eval().save_pretrained(str(folder))
    return {"type": "HfModel", "model_path": str(folder), "task": "feature-extraction"}


def _save_perturbed(build: Callable[[], Any], folder: Path) -> None:
    """Build a model with seed 0, nudge every weight (trained-looking: freshly initialized zero biases are
    shared by the export, and onnxruntime's QOperator quantizer then mixes their uses) and save it."""
    import torch

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build().eval()
        with torch.no_grad():
            for param in model.parameters():
                param.add_(0.02 * torch.randn_like(param))
        model.save_pretrained(str(folder))


def write_tiny_mpnet(folder: Path) -> dict[str, Any]:
    """An ``HfModel`` (feature-extraction): 2-layer MPNet (relative-position buckets computed in float),
    hidden 32, 2 heads, with the same WordPiece tokenizer."""
    from transformers import MPNetConfig, MPNetModel

    tokenizer = _write_wordpiece(folder)
    config = MPNetConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=130,
        pad_token_id=tokenizer.pad_token_id,
    )
    _save_perturbed(lambda: MPNetModel(config), folder)
    return {"type": "HfModel", "model_path": str(folder), "task": "feature-extraction"}


def write_tiny_deberta(folder: Path, *, v2: bool = True) -> dict[str, Any]:
    """An ``HfModel`` (feature-extraction): 2-layer DeBERTa (v2 as DeBERTa-v3 uses it, or v1) with relative
    attention (its attention masking is a ``Where``), hidden 32, 2 heads, the same WordPiece tokenizer."""
    from transformers import DebertaConfig, DebertaModel, DebertaV2Config, DebertaV2Model

    tokenizer = _write_wordpiece(folder)
    common = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 64,
        "relative_attention": True,
        "pos_att_type": ["p2c", "c2p"],
    }
    config = (
        DebertaV2Config(**common, position_buckets=16, max_relative_positions=-1)
        if v2
        else DebertaConfig(**common)
    )
    _save_perturbed(lambda: (DebertaV2Model if v2 else DebertaModel)(config), folder)
    return {"type": "HfModel", "model_path": str(folder), "task": "feature-extraction"}


def write_tiny_llama(folder: Path) -> dict[str, Any]:
    """An ``HfModel`` (text-generation): 2-layer Llama, hidden 32, with the same WordPiece tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = _write_wordpiece(folder)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        LlamaForCausalLM(config).eval().save_pretrained(str(folder))
    return {"type": "HfModel", "model_path": str(folder), "task": "text-generation"}


def handle(input_model: dict[str, Any]) -> ModelHandle:
    """The :class:`ModelHandle` of an ``input_model`` dict (its paths are already absolute)."""
    return ModelHandle.from_json(
        {"type": input_model["type"], "config": {k: v for k, v in input_model.items() if k != "type"}}
    )
