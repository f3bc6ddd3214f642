"""ONNX export of a causal language model with its KV cache (Olive's ``text-generation-with-past``).

The graph has Olive's (and optimum's) names: inputs ``input_ids``, ``attention_mask``, ``position_ids``
(when the model takes them) and ``past_key_values.<layer>.key`` / ``.value``; outputs ``logits`` and
``present.<layer>.key`` / ``.value``. The past has shape ``[batch, kv_heads, past_sequence, head_dim]``
and the attention mask covers past plus new tokens (its length is named ``past_sequence_length +
sequence_length``, as in Olive). The graph's inputs are in the order of the model's ``forward``, as
Olive orders them (GPT-2: ``input_ids``, the past, ``attention_mask``, ``position_ids``).

torch 2.13's TorchScript exporter fails on transformers' causal masks, so the export always uses the dynamo
exporter (opset 18 or the config's, if higher) with dynamic batch, sequence and past lengths.
"""

from __future__ import annotations

import inspect
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: Olive 0.13 maps ``causal-lm-with-past`` (its optimum-era name) to ``text-generation-with-past``.
WITH_PAST_TASKS = ("text-generation-with-past", "causal-lm-with-past")


@dataclass(frozen=True)
class CacheShape:
    layers: int
    kv_heads: int
    head_dim: int

    @classmethod
    def of(cls, hf_config: Any) -> CacheShape:
        layers = int(hf_config.num_hidden_layers)
        heads = int(hf_config.num_attention_heads)
        kv_heads = int(getattr(hf_config, "num_key_value_heads", None) or heads)
        head_dim = int(getattr(hf_config, "head_dim", None) or hf_config.hidden_size // heads)
        return cls(layers, kv_heads, head_dim)

    def past_names(self) -> list[str]:
        return [f"past_key_values.{i}.{kv}" for i in range(self.layers) for kv in ("key", "value")]

    def present_names(self) -> list[str]:
        return [f"present.{i}.{kv}" for i in range(self.layers) for kv in ("key", "value")]


#: The dimension name of the cache's whole length (past + new tokens): Olive's, in its task templates.
TOTAL = "past_sequence_length + sequence_length"


def io_config(module: Any) -> dict[str, Any]:
    """Olive's io_config of the KV-cache export of ``module`` (a transformers causal LM)."""
    from olivine.model.loaders import forward_order

    shape = CacheShape.of(module.config)
    parameters = list(inspect.signature(module.forward).parameters)
    inputs = ["input_ids", "attention_mask"]
    if "position_ids" in parameters:
        inputs.append("position_ids")
    past, present = shape.past_names(), shape.present_names()
    axes: dict[str, dict[int, str]] = {
        "input_ids": {0: "batch_size", 1: "sequence_length"},
        "attention_mask": {0: "batch_size", 1: TOTAL},
        "position_ids": {0: "batch_size", 1: "sequence_length"},
        "logits": {0: "batch_size", 1: "sequence_length"},
    }
    axes.update({name: {0: "batch_size", 2: "past_sequence_length"} for name in past})
    axes.update({name: {0: "batch_size", 2: TOTAL} for name in present})
    return {
        # In forward's order, as Olive's (GPT-2: input_ids, past_key_values.*, attention_mask, ...).
        "input_names": forward_order(inputs + past, parameters),
        "output_names": ["logits", *present],
        "dynamic_axes": {
            k: v for k, v in axes.items() if k in inputs + past or k == "logits" or k in present
        },
        "kv_cache": True,
    }


def dummy_inputs(module: Any, names: list[str], *, batch: int = 2, seq: int = 3, past: int = 4) -> tuple:
    """Export inputs: ``seq`` new tokens after ``past`` cached ones."""
    import torch

    shape = CacheShape.of(module.config)
    vocab = int(getattr(module.config, "vocab_size", 100))
    values: dict[str, Any] = {
        "input_ids": torch.randint(0, vocab, (batch, seq), generator=torch.Generator().manual_seed(0)),
        "attention_mask": torch.ones(batch, past + seq, dtype=torch.int64),
        "position_ids": torch.arange(past, past + seq, dtype=torch.int64).expand(batch, seq).contiguous(),
    }
    dtype = next(module.parameters()).dtype
    for name in shape.past_names():
        values[name] = torch.zeros(batch, shape.kv_heads, past, shape.head_dim, dtype=dtype)
    return tuple(values[name] for name in names)


def export_with_past(module: Any, io: dict[str, Any], path: Path, *, opset: int, optimize: bool) -> None:
    """Export ``module`` with its KV cache to ``path`` (see the module docstring)."""
    import torch

    shape = CacheShape.of(module.config)
    # The wrapper takes the plain inputs in its own order, then the cache; the graph's inputs are put in
    # io's order (forward's) after the export.
    plain_names = [n for n in ("input_ids", "attention_mask", "position_ids") if n in io["input_names"]]
    names = plain_names + shape.past_names()
    wrapper = _with_past(module, shape, plain_names)
    args = dummy_inputs(module, names)
    dim = torch.export.Dim
    batch, seq = dim("batch_size", min=1, max=1024), dim("sequence_length", min=1, max=65536)
    past, total = (
        dim("past_sequence_length", min=1, max=65536),
        dim("total_sequence_length", min=2, max=131072),
    )
    specs = {"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: total}}
    specs["position_ids"] = {0: batch, 1: seq}
    plain = [specs[n] for n in names if not n.startswith("past_key_values.")]
    dynamic_shapes = (*plain, tuple({0: batch, 2: past} for _ in shape.past_names()))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning)
        program = torch.onnx.export(
            wrapper,
            args,
            dynamo=True,
            verbose=False,
            opset_version=max(opset, 18),
            input_names=names,
            output_names=io["output_names"],
            dynamic_shapes=dynamic_shapes,
            optimize=optimize,
        )
    if program is None:
        raise RuntimeError("the dynamo exporter returned no program")
    _rename_dim(program.model, "total_sequence_length", TOTAL)  # export Dims are identifiers
    graph_inputs = {value.name: value for value in program.model.graph.inputs}
    if set(graph_inputs) == set(io["input_names"]):
        program.model.graph.inputs.clear()
        program.model.graph.inputs.extend(graph_inputs[name] for name in io["input_names"])
    program.save(str(path))


def _with_past(model: Any, shape: CacheShape, plain: list[str]) -> Any:
    """The model called with a cache built from flat past tensors, returning logits and flat presents;
    ``forward`` names its inputs (the dynamo exporter maps dynamic shapes through its signature)."""
    import torch

    class WithPast(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def run(self, kwargs: dict[str, Any], past: tuple[Any, ...]) -> tuple[Any, ...]:
            from transformers.cache_utils import DynamicCache

            cache = DynamicCache()
            for layer in range(shape.layers):
                cache.update(past[2 * layer], past[2 * layer + 1], layer)
            out = self.model(**kwargs, past_key_values=cache, use_cache=True)
            presents = out.past_key_values
            flat: list[Any] = []
            for layer in range(shape.layers):
                if hasattr(presents, "layers"):
                    flat += [presents.layers[layer].keys, presents.layers[layer].values]
                else:  # older transformers: a tuple of (key, value) per layer
                    flat += list(presents[layer][:2])
            return (out.logits, *flat)

    class WithPositions(WithPast):
        def forward(self, input_ids: Any, attention_mask: Any, position_ids: Any, *past: Any) -> Any:
            return self.run(
                {"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": position_ids}, past
            )

    class WithoutPositions(WithPast):
        def forward(self, input_ids: Any, attention_mask: Any, *past: Any) -> Any:
            return self.run({"input_ids": input_ids, "attention_mask": attention_mask}, past)

    return (WithPositions if "position_ids" in plain else WithoutPositions)()


def _rename_dim(model: Any, old: str, new: str) -> None:
    """Call the symbolic dimension ``old`` ``new`` in every value's shape of ``model`` (an onnx_ir Model)."""
    import onnx_ir as ir

    graph = model.graph
    values = [*graph.inputs, *graph.outputs, *(v for node in graph.all_nodes() for v in node.outputs)]
    for value in values:
        shape = value.shape
        if shape is not None and any(str(d) == old for d in shape.dims):
            value.shape = ir.Shape([new if str(d) == old else d for d in shape.dims])
