"""Calibration data for the static-quantization alternative: the MiniLM example's sentences.

Olive's user-script form (``from olive.data.registry import Registry``; Olivine serves that import when
Olive is not installed): a data config names the dataset (``load_dataset_config.type: minilm_sentences``).
Each sample is one sentence tokenized as the latency metric feeds the model (padded to 128 tokens), so
the activation ranges are those of real text. Tokenizing here, rather than with Olive's
``tokenizer_pre_process``, keeps the data config runnable in Olive without the ``datasets`` package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from olive.data.registry import Registry


@Registry.register_dataset()
def minilm_sentences(
    data_dir: str, model_name: str, max_samples: int = 64, max_length: int = 128, **kwargs: Any
) -> list[tuple[dict[str, np.ndarray], int]]:
    """``(inputs, 0)`` for the first ``max_samples`` sentences of ``<data_dir>/sentences.txt``."""
    from transformers import AutoTokenizer

    lines = Path(data_dir, "sentences.txt").read_text(encoding="utf-8").splitlines()
    sentences = [line.strip() for line in lines if line.strip()][:max_samples]
    tokenizer = AutoTokenizer.from_pretrained(model_name, local_files_only=True)
    encoded = tokenizer(sentences, padding="max_length", truncation=True, max_length=max_length)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    return [({n: np.asarray(encoded[n][i], dtype=np.int64) for n in names}, 0) for i in range(len(sentences))]
