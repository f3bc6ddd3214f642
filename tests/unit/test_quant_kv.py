"""Calibration batches for decoders with a KV cache: the inputs Olive's calibration reader adds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper

from olivine.passes.quant_kv import kv_calibration


def _graph(names_dims: list[tuple[str, int, list[int | str]]], ops: tuple[str, ...] = ("MatMul",)) -> object:
    inputs = [helper.make_tensor_value_info(n, t, dims) for n, t, dims in names_dims]
    nodes = [helper.make_node(op, [], [f"o{i}"]) for i, op in enumerate(ops)]
    return helper.make_graph(nodes, "g", inputs, [])


DTYPES = {"past_key_values.0.key": np.float32, "past_key_values.0.value": np.float32}
TEXT = {
    "input_ids": np.array([[5, 6, 7], [8, 9, 0]], np.int64),
    "attention_mask": np.array([[1, 1, 1], [1, 1, 0]], np.int64),
}


def _llama_like(*extra: tuple[str, int, list[int | str]], ops: tuple[str, ...] = ("MatMul",)) -> object:
    return _graph(
        [
            ("input_ids", TensorProto.INT64, ["b", "s"]),
            ("attention_mask", TensorProto.INT64, ["b", "t"]),
            ("past_key_values.0.key", TensorProto.FLOAT, ["b", 2, "p", 8]),
            ("past_key_values.0.value", TensorProto.FLOAT, ["b", 2, "p", 8]),
            *extra,
        ],
        ops,
    )


def test_a_text_batch_gets_an_empty_cache_one_unattended_past_token_and_positions() -> None:
    graph = _llama_like(("position_ids", TensorProto.INT64, ["b", "s"]))
    kv = kv_calibration(graph, {**DTYPES, "position_ids": np.int64})
    assert kv is not None
    batch = kv.complete(TEXT)
    np.testing.assert_array_equal(batch["attention_mask"], [[0, 1, 1, 1], [0, 1, 1, 0]])
    for name in DTYPES:
        assert batch[name].shape == (2, 2, 1, 8) and batch[name].dtype == np.float32 and not batch[name].any()
    np.testing.assert_array_equal(batch["position_ids"], [[0, 1, 2], [0, 1, 1]])
    np.testing.assert_array_equal(batch["input_ids"], TEXT["input_ids"])


def test_group_query_attention_gets_a_cache_of_length_zero_and_the_mask_unchanged() -> None:
    graph = _llama_like(ops=("GroupQueryAttention",))
    kv = kv_calibration(graph, DTYPES)
    assert kv is not None
    batch = kv.complete(TEXT)
    np.testing.assert_array_equal(batch["attention_mask"], TEXT["attention_mask"])
    assert batch["past_key_values.0.key"].shape == (2, 2, 0, 8)


def test_past_seq_len_and_total_seq_len_replace_a_mask_the_model_does_not_take() -> None:
    graph = _graph(
        [
            ("input_ids", TensorProto.INT64, ["b", "s"]),
            ("past_key_0", TensorProto.FLOAT16, ["b", 4, "p", 16]),
            ("past_value_0", TensorProto.FLOAT16, ["b", 4, "p", 16]),
            ("past_seq_len", TensorProto.INT32, ["b", 1]),
            ("total_seq_len", TensorProto.INT32, []),
        ],
        ("GroupQueryAttention",),
    )
    dtypes = {
        "past_key_0": np.float16,
        "past_value_0": np.float16,
        "past_seq_len": np.int32,
        "total_seq_len": np.int32,
    }
    kv = kv_calibration(graph, dtypes)
    assert kv is not None
    batch = kv.complete(TEXT)
    assert "attention_mask" not in batch
    assert batch["past_key_0"].dtype == np.float16 and batch["past_key_0"].shape == (2, 4, 0, 16)
    np.testing.assert_array_equal(batch["past_seq_len"], [[2], [1]])
    assert batch["past_seq_len"].dtype == np.int32
    assert int(batch["total_seq_len"]) == 3 and batch["total_seq_len"].shape == ()


def test_a_batch_with_its_own_cache_is_left_as_given() -> None:
    kv = kv_calibration(_llama_like(), DTYPES)
    assert kv is not None
    own = {**TEXT, **{n: np.ones((2, 2, 5, 8), np.float32) for n in DTYPES}}
    batch = kv.complete(own)
    assert set(batch) == set(own)
    for name, value in own.items():
        np.testing.assert_array_equal(batch[name], value)


def test_head_size_named_by_a_dimension_is_read_from_the_genai_config(tmp_path: Path) -> None:
    graph = _graph(
        [
            ("input_ids", TensorProto.INT64, ["b", "s"]),
            ("past_key_values.0.key", TensorProto.FLOAT, ["b", 2, "p", "kv_cache_dim"]),
        ]
    )
    dtypes = {"past_key_values.0.key": np.float32}
    assert kv_calibration(graph, dtypes, tmp_path) is None
    config = {"model": {"decoder": {"num_key_value_heads": 2, "head_size": 24}}}
    (tmp_path / "genai_config.json").write_text(json.dumps(config))
    kv = kv_calibration(graph, dtypes, tmp_path)
    assert kv is not None
    assert kv.complete(TEXT)["past_key_values.0.key"].shape == (2, 2, 1, 24)


def test_a_model_without_these_inputs_needs_nothing() -> None:
    graph = _graph([("input", TensorProto.FLOAT, ["b", 4])])
    assert kv_calibration(graph, {"input": np.float32}) is None
    fixed_past = _graph([("past_key_values.0.key", TensorProto.FLOAT, [1, 2, 8, 8])])
    assert kv_calibration(fixed_past, DTYPES) is None  # a fixed past length is data the user gives
