"""Calibration batches for a causal LM exported with its KV cache, completed as Olive completes them.

A text dataset gives ``input_ids`` and ``attention_mask``; a decoder exported with its cache also takes
the past keys and values (and often ``position_ids``, or ``past_seq_len`` / ``total_seq_len`` for
GroupQueryAttention). Olive's calibration reader (``LLMAugmentedDataLoader`` in
olive/data/component/dataloader.py) adds what the batch lacks, and so does this module, the same way:

- an empty cache: zeros of shape (batch, kv heads, 1, head size) with one unattended past token prepended
  to the attention mask, so that the calibrator sees every tensor; with GroupQueryAttention a cache of
  length 0 and the mask unchanged;
- ``position_ids``: the running count of attended tokens, for the new tokens only;
- ``past_seq_len`` (attended tokens - 1) and ``total_seq_len`` (the mask's length) in place of the mask.

The cache's input names follow Olive's two layouts, ``past_key_values.<i>.key`` / ``.value`` and
``past_key_<i>`` / ``past_value_<i>``, with a dynamic past length; heads and head size are read from the
graph's input shapes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_PAST = (re.compile(r"past_key_values\.\d+\.(key|value)$"), re.compile(r"past_(key|value)_\d+$"))


@dataclass(frozen=True)
class KvCalibration:
    #: (name, numpy dtype, kv heads, head size) of each past input.
    past: tuple[tuple[str, Any, int, int], ...]
    gqa: bool
    #: The numpy dtype of each of the other inputs this module can make, when the model has it.
    extra: dict[str, Any]
    #: Whether the model reads the attention mask itself (GroupQueryAttention models may not).
    takes_mask: bool

    def complete(self, batch: dict[str, Any]) -> dict[str, Any]:
        """``batch`` with the empty cache and the derived inputs it lacks (a batch that has its own cache
        is only given the derived inputs it lacks)."""
        import numpy as np

        batch = {key: np.asarray(value) for key, value in batch.items()}
        if "input_ids" not in batch:
            return batch
        ids = batch["input_ids"]
        mask = batch.get("attention_mask")
        if mask is None:
            mask = np.ones_like(ids)
        if self.past and self.past[0][0] not in batch:
            if not self.gqa:  # one unattended past token: every cache tensor has a shape to calibrate
                mask = np.concatenate([np.zeros_like(mask[:, :1]), mask], axis=-1)
            rows, length = ids.shape[0], 0 if self.gqa else 1
            batch = {"input_ids": ids, "attention_mask": mask}
            for name, dtype, heads, head_size in self.past:
                batch[name] = np.zeros((rows, heads, length, head_size), dtype=dtype)
        if "position_ids" in self.extra and "position_ids" not in batch:
            positions = (np.cumsum(mask, axis=-1) - 1)[:, -ids.shape[-1] :]
            batch["position_ids"] = positions.astype(self.extra["position_ids"])
        if "past_seq_len" in self.extra and "past_seq_len" not in batch:
            batch["past_seq_len"] = (mask.sum(axis=-1, keepdims=True) - 1).astype(self.extra["past_seq_len"])
            batch["total_seq_len"] = np.array(mask.shape[-1], dtype=self.extra.get("total_seq_len", np.int32))
            if not self.takes_mask:
                batch.pop("attention_mask", None)
        return batch


def kv_calibration(graph: Any, dtypes: dict[str, Any], folder: Path | None = None) -> KvCalibration | None:
    """What :meth:`KvCalibration.complete` needs to know of ``graph`` (an ``onnx.GraphProto``), or None when
    the model takes none of these inputs (a cache input counts when its past length is dynamic and its
    heads and head size are fixed)."""
    past = []
    genai = _genai_kv_dims(folder)
    for value in graph.input:
        if not any(pattern.match(value.name) for pattern in _PAST) or value.name not in dtypes:
            continue
        dims = value.type.tensor_type.shape.dim
        if len(dims) != 4 or dims[2].HasField("dim_value"):
            continue
        heads = dims[1].dim_value if dims[1].HasField("dim_value") else genai[0] if genai else None
        head_size = dims[3].dim_value if dims[3].HasField("dim_value") else genai[1] if genai else None
        if heads is None or head_size is None:
            continue
        past.append((value.name, dtypes[value.name], heads, head_size))
    names = {value.name for value in graph.input}
    extra: dict[str, Any] = {
        n: dtypes[n] for n in ("position_ids", "past_seq_len", "total_seq_len") if n in dtypes
    }
    if not past and not extra:
        return None
    return KvCalibration(
        past=tuple(past),
        gqa=any(node.op_type == "GroupQueryAttention" for node in graph.node),
        extra=extra,
        takes_mask="attention_mask" in names,
    )


def _genai_kv_dims(folder: Path | None) -> tuple[int, int] | None:
    """(kv heads, head size) from the ``genai_config.json`` beside a ModelBuilder model, whose cache inputs
    name the head size (``kv_cache_dim``) instead of giving it."""
    if folder is None or not (folder / "genai_config.json").is_file():
        return None
    try:
        decoder = json.loads((folder / "genai_config.json").read_text(encoding="utf-8"))["model"]["decoder"]
        heads, head_size = decoder["num_key_value_heads"], decoder["head_size"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    valid = all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in (heads, head_size))
    return (heads, head_size) if valid else None


def _present_name(past: str) -> str | None:
    """The cache output a cache input is fed from at the next step (Olive's two layouts)."""
    match = re.fullmatch(r"past_key_values\.(\d+)\.(key|value)", past)
    if match:
        return f"present.{match[1]}.{match[2]}"
    match = re.fullmatch(r"past_(key|value)_(\d+)", past)
    return f"present_{match[1]}_{match[2]}" if match else None


def sync_past_ranges(path: Path) -> list[str]:
    """Give each quantized cache input of the model at ``path`` the scale and zero point of its cache output.

    Calibrated on an empty cache, the inputs' range is (0, 0) and onnxruntime gives them scale 1: at every
    decoding step the cached keys and values (|x| < 1) were rounded to whole numbers, while the first step
    looked right. At the next step a cache input *is* the cache output of this one, so its range is that
    output's (what Olive leaves to a later pass: "sync quant params between past and present"). Both
    layouts name the parameters ``<tensor>_scale`` / ``<tensor>_zero_point`` (QDQ and QOperator). Returns the
    cache inputs changed; the file is written again (graph only) when there are any.
    """
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    initializers = {tensor.name: tensor for tensor in proto.graph.initializer}
    synced = []
    for value in proto.graph.input:
        present = _present_name(value.name)
        if present is None:
            continue
        pairs = [(f"{value.name}{suffix}", f"{present}{suffix}") for suffix in ("_scale", "_zero_point")]
        if not all(a in initializers and b in initializers for a, b in pairs):
            continue
        same_kind = all(
            initializers[a].data_type == initializers[b].data_type
            and initializers[a].dims == initializers[b].dims
            for a, b in pairs
        )
        if not same_kind:
            continue
        for a, b in pairs:
            initializers[a].CopyFrom(initializers[b])
            initializers[a].name = a
        synced.append(value.name)
    if synced:
        onnx.save_model(proto, str(path))
    return synced
