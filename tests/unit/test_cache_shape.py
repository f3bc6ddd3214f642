"""The past key/value shape of a causal LM's dummy inputs, read from config.json under each family's names."""

from __future__ import annotations

from typing import Any

import pytest

from olivine.data.hf import _cache_shape


@pytest.mark.parametrize(
    ("config", "shape"),
    [
        ({"num_attention_heads": 4, "hidden_size": 64}, (4, 7, 16)),
        ({"num_attention_heads": 8, "num_key_value_heads": 2, "hidden_size": 64, "head_dim": 32}, (2, 7, 32)),
        ({"n_head": 4, "n_embd": 64}, (4, 7, 16)),  # GPT-2, GPT-J, CodeGen (the raw file's names)
        ({"n_heads": 2, "d_model": 64}, (2, 7, 32)),  # MPT
        ({"num_attention_heads": 4, "hidden_size": 64, "multi_query": True}, (1, 7, 16)),  # Falcon
        ({"n_head": 4}, None),
        ({"num_attention_heads": True, "hidden_size": 64}, None),
    ],
)
def test_cache_shape_reads_each_familys_names(
    config: dict[str, Any], shape: tuple[int, int, int] | None
) -> None:
    assert _cache_shape(config, 7) == shape
