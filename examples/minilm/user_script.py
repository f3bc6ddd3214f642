"""Custom metrics for the MiniLM example: how close a candidate's sentence embeddings stay to PyTorch fp32.

Olive's ``evaluate_func`` signature: ``func(model, device, execution_providers, **evaluate_func_kwargs)``;
Olivine also passes ``input_model`` (the reference model) and ``data_dir`` (the folder holding the
sentences), which travel with the workflow when it is submitted to a host.

- ``fidelity``: mean cosine similarity over ``data/sentences.txt`` (higher is better, 1.0 = identical).
- ``fidelity_stats``: mean and worst sentence, as ``{"mean": ..., "min": ...}`` for a metric with those two
  sub-types.

Embeddings are sentence-transformers' recipe for all-MiniLM-L6-v2: mean of the last hidden state over
non-padding tokens, L2-normalised. Sentences are tokenized with the model folder's tokenizer in batches of
32, padded to the longest in the batch, truncated at 128 tokens (its ``tokenizer.json`` through the
``tokenizers`` library, the same ids as transformers' fast tokenizer without importing transformers, which
imports torch: see ``_tokenizer``). The fp32 reference embeddings are computed
once with transformers, memoised per process and stored as ``.fidelity_cache/reference-<hash>.npy`` (the
hash covers the model files, the sentences and the settings), so reruns do not recompute them. A
candidate's cosines are memoised per process too, so ``fidelity`` and ``fidelity_stats`` share one run.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from olivine.model.accelerator import Accelerator
from olivine.model.handle import ModelHandle
from olivine.model.runner import open_runner

HERE = Path(__file__).resolve().parent
BATCH_SIZE = 32
MAX_LENGTH = 128
_REFERENCES: dict[str, np.ndarray] = {}
_COSINES: dict[str, np.ndarray] = {}
_DIGESTS: dict[str, str] = {}
_TOKENIZERS: dict[str, Callable[[list[str]], Mapping[str, np.ndarray]]] = {}


def fidelity(
    model: ModelHandle,
    device: str = "cpu",
    execution_providers: Any = None,
    input_model: ModelHandle | None = None,
    data_dir: str | None = None,
    **kwargs: Any,
) -> float:
    """Mean cosine similarity between the candidate's and the fp32 reference embeddings."""
    cosines = _cosines(
        model, device, execution_providers, input_model=input_model, data_dir=data_dir, **kwargs
    )
    return float(cosines.mean())


def fidelity_stats(
    model: ModelHandle,
    device: str = "cpu",
    execution_providers: Any = None,
    input_model: ModelHandle | None = None,
    data_dir: str | None = None,
    **kwargs: Any,
) -> dict[str, float]:
    """``{"mean": ..., "min": ...}`` for a custom metric with sub-types ``mean`` and ``min``."""
    cosines = _cosines(
        model, device, execution_providers, input_model=input_model, data_dir=data_dir, **kwargs
    )
    return {"mean": float(cosines.mean()), "min": float(cosines.min())}


def _reference_model(input_model: ModelHandle | None, model_dir: str | None) -> ModelHandle:
    """The PyTorch model the reference embeddings come from: ``model_dir`` if given (relative to this
    script), else the workflow's input model (Olivine passes it as ``input_model``), else ``./model``."""
    if model_dir is None and input_model is not None and input_model.kind == "hf" and input_model.model_path:
        return input_model
    folder = (HERE / (model_dir or "model")).resolve()
    return ModelHandle("hf", {"model_path": str(folder), "task": "feature-extraction"})


def _cosines(
    model: ModelHandle,
    device: str,
    execution_providers: Any,
    *,
    input_model: ModelHandle | None = None,
    data_dir: str | None = None,
    model_dir: str | None = None,
    sentences_file: str = "sentences.txt",
    max_samples: int | None = None,
) -> np.ndarray:
    """Per-sentence cosine similarity of the candidate against the reference (both unit vectors).

    ``data_dir`` (the metric's ``user_config.data_dir``) holds ``sentences_file``; without it the file is
    looked up beside this script. Both are passed by Olivine, which bundles ``data_dir`` for remote runs.
    """
    reference_model = _reference_model(input_model, model_dir)
    folder = Path(str(reference_model.model_path)).resolve()
    sentences = _sentences(Path(data_dir or HERE) / sentences_file, max_samples)
    providers = _providers(execution_providers)
    key = json.dumps(
        [model.to_json(), _file_stamps(model), providers, str(folder), len(sentences)], default=str
    )
    if key not in _COSINES:
        reference = _reference(reference_model, sentences)
        if model.kind == "hf" and model.model_path and Path(model.model_path).resolve() == folder:
            candidate = reference  # the reference model itself (the input model): no second pass over it
        else:
            runner = open_runner(model, Accelerator(device=device or "cpu", execution_providers=providers))
            candidate = _embed(lambda feed: runner.run(feed)[0], list(runner.input_names), folder, sentences)
        _COSINES[key] = np.sum(reference * candidate, axis=1)
    return _COSINES[key]


def _providers(execution_providers: Any) -> tuple[str, ...]:
    if not execution_providers:
        return ("CPUExecutionProvider",)
    if isinstance(execution_providers, str):
        return (execution_providers,)
    return tuple(str(ep) for ep in execution_providers)


def _sentences(path: Path, max_samples: int | None) -> list[str]:
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    sentences = [line for line in lines if line]
    return sentences[:max_samples] if max_samples else sentences


def _file_stamps(model: ModelHandle) -> list[tuple[str, int, int]]:
    """Identify the candidate's files by path, size and mtime (a rewritten model gets fresh cosines)."""
    return [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in model.files()]


def _tokenizer(folder: Path) -> Callable[[list[str]], Mapping[str, np.ndarray]]:
    """The model folder's tokenizer: sentences -> ``input_ids``, ``attention_mask``, ``token_type_ids``,
    padded to the longest in the batch, truncated at ``MAX_LENGTH`` (memoised per process).

    With a ``tokenizer.json`` (a fast tokenizer's file, as this model has) it runs through the
    ``tokenizers`` library, which is what transformers' fast tokenizer runs, with the same settings
    (the file's own fixed padding replaced by padding to the longest): the same ids. ``import transformers``
    imports torch when it is installed (seconds per process), and a candidate's fidelity needs no torch
    once the reference embeddings are cached. Without the file: transformers' ``AutoTokenizer``."""
    key = str(folder)
    if key in _TOKENIZERS:
        return _TOKENIZERS[key]
    path = folder / "tokenizer.json"
    if path.is_file():
        from tokenizers import Tokenizer

        fast = Tokenizer.from_file(str(path))
        pad = _pad_token(folder)
        fast.enable_truncation(max_length=MAX_LENGTH)  # longest first, from the right: transformers' default
        fast.enable_padding(pad_id=fast.token_to_id(pad), pad_token=pad)  # to the longest, on the right

        def encode(batch: list[str]) -> Mapping[str, np.ndarray]:
            encoded = fast.encode_batch(batch)
            return {
                "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encoded], dtype=np.int64),
            }

    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)

        def encode(batch: list[str]) -> Mapping[str, np.ndarray]:
            out = tokenizer(
                batch, padding="longest", truncation=True, max_length=MAX_LENGTH, return_tensors="np"
            )
            return {name: np.asarray(out[name]) for name in out}

    _TOKENIZERS[key] = encode
    return encode


def _pad_token(folder: Path) -> str:
    """The padding token named in the folder's ``tokenizer_config.json`` (``[PAD]`` when it names none)."""
    config = folder / "tokenizer_config.json"
    token: Any = json.loads(config.read_text(encoding="utf-8")).get("pad_token") if config.is_file() else None
    if isinstance(token, dict):
        token = token.get("content")
    return token if isinstance(token, str) else "[PAD]"


def _embed(run: Any, input_names: list[str], folder: Path, sentences: list[str]) -> np.ndarray:
    """Mean-pooled, L2-normalised embeddings; ``run(feed)`` returns the last hidden state."""
    tokenize = _tokenizer(folder)
    chunks: list[np.ndarray] = []
    for start in range(0, len(sentences), BATCH_SIZE):
        batch = tokenize(sentences[start : start + BATCH_SIZE])
        feed = {name: np.asarray(batch[name], dtype=np.int64) for name in input_names if name in batch}
        hidden = np.asarray(run(feed), dtype=np.float32)
        mask = batch["attention_mask"].astype(np.float32)[:, :, None]
        pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
        chunks.append(pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None))
    return np.concatenate(chunks)


def _reference(reference_model: ModelHandle, sentences: list[str]) -> np.ndarray:
    """The PyTorch fp32 embeddings: memoised per process and on disk under a content hash."""
    folder = Path(str(reference_model.model_path)).resolve()
    digest = _reference_hash(folder, sentences)
    if digest in _REFERENCES:
        return _REFERENCES[digest]
    cache = HERE / ".fidelity_cache" / f"reference-{digest}.npy"
    if cache.is_file():
        _REFERENCES[digest] = np.load(cache)
        return _REFERENCES[digest]
    # open_runner shares the module Olivine loaded to evaluate the input model (no second load).
    runner = open_runner(reference_model)
    embeddings = _embed(lambda feed: runner.run(feed)[0], list(runner.input_names), folder, sentences)
    cache.parent.mkdir(exist_ok=True)
    tmp = cache.with_name(f"{cache.stem}.{os.getpid()}.tmp.npy")
    np.save(tmp, embeddings)
    os.replace(tmp, cache)  # atomic: a concurrent evaluation never reads half a file
    _REFERENCES[digest] = embeddings
    return embeddings


def _reference_hash(folder: Path, sentences: list[str]) -> str:
    """sha256 of the model folder's files, the sentences and the embedding settings (memoised per process
    while the files keep their size and mtime: hashing 90 MB for every candidate would be wasted time)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    stamps = json.dumps([(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files] + sentences)
    if stamps not in _DIGESTS:
        _DIGESTS[stamps] = _hash_files(folder, files, sentences)
    return _DIGESTS[stamps]


def _hash_files(folder: Path, files: list[Path], sentences: list[str]) -> str:
    digest = hashlib.sha256(json.dumps([BATCH_SIZE, MAX_LENGTH, "mean-pool-l2"]).encode())
    for path in files:
        digest.update(str(path.relative_to(folder)).encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    digest.update("\n".join(sentences).encode())
    return digest.hexdigest()
