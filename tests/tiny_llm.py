"""Causal language models with random weights built in code (never downloaded), for ModelBuilder tests
and bench/model_builder.py: a Hugging Face folder (config, safetensors weights) plus a byte-level BPE
tokenizer trained in code with ``tokenizers`` and saved through transformers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

Family = Literal["llama", "qwen2", "phi3"]

_CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "hello world this is a tiny language model for tests",
    "one two three four five six seven eight nine ten",
    "onnx runtime generates tokens with a key value cache",
]


def write_tokenizer(folder: Path, vocab_size: int = 300) -> int:
    """Train a byte-level BPE tokenizer on a small corpus; save it in ``folder``; return its size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(_CORPUS * 10, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    fast.save_pretrained(str(folder))
    return len(fast)


def write_causal_lm(
    folder: Path,
    family: Family = "llama",
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 128,
    vocab_size: int | None = None,
    max_positions: int = 256,
    tie_word_embeddings: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """Write a random-weight causal LM of ``family`` and its tokenizer; return the ``HfModel`` input dict.

    ``vocab_size`` defaults to the tokenizer's size; a larger one gives realistic embedding and LM-head
    shapes (the extra ids have no text).
    """
    import torch
    from transformers import (
        LlamaConfig,
        LlamaForCausalLM,
        Phi3Config,
        Phi3ForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    folder.mkdir(parents=True, exist_ok=True)
    tokens = write_tokenizer(folder)
    common = {
        "vocab_size": max(vocab_size or tokens, tokens),
        "hidden_size": hidden_size,
        "intermediate_size": intermediate_size,
        "num_hidden_layers": num_layers,
        "num_attention_heads": num_heads,
        "num_key_value_heads": num_kv_heads,
        "max_position_embeddings": max_positions,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 0,
        "tie_word_embeddings": tie_word_embeddings,
    }
    classes = {
        "llama": (LlamaConfig, LlamaForCausalLM),
        "qwen2": (Qwen2Config, Qwen2ForCausalLM),
        "phi3": (Phi3Config, Phi3ForCausalLM),
    }
    config_class, model_class = classes[family]
    if family == "phi3":
        # Phi-3 uses LongRoPE when the context is longer than the original one (it then needs the
        # rope_scaling factors); a plain RoPE model keeps both equal.
        common["original_max_position_embeddings"] = max_positions
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = model_class(config_class(**common)).eval()
        model.save_pretrained(str(folder))
    return {"type": "HfModel", "model_path": str(folder), "task": "text-generation"}


def write_text_calibration(folder: Path) -> dict[str, Any]:
    """A few lines of text as ``folder/d.csv`` and Olive's text-generation data config over them ("calib")."""
    (folder / "d.csv").write_text(
        "text\nthe cat sat on the mat\na dog ran far away\nhello world again\nmore words\n"
    )
    return {
        "name": "calib",
        "type": "HuggingfaceContainer",
        "load_dataset_config": {"data_name": "csv", "data_files": "d.csv", "split": "train"},
        "pre_process_data_config": {"text_cols": ["text"], "max_seq_len": 8},
        "dataloader_config": {"batch_size": 2},
    }
