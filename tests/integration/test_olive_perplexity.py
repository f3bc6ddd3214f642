"""Olive's ``perplexity`` accuracy sub-type (torchmetrics' Perplexity over the text-generation data), and
Olive 0.13's generated-text sub-types refused at validation by name."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from olivine.api import load, run_local
from olivine.errors import ConfigError
from olivine.evaluate import metrics as m

pytestmark = pytest.mark.integration


def test_perplexity_matches_torch_cross_entropy_and_skips_ignored_labels() -> None:
    import torch

    rng = np.random.default_rng(0)
    logits = rng.standard_normal((3, 6, 11)).astype(np.float32)
    labels = rng.integers(0, 11, size=(3, 6))
    labels[0, 4:] = -100  # padding
    labels[2, :2] = -100  # context
    expected = torch.nn.functional.cross_entropy(
        torch.from_numpy(logits[:, :-1, :]).reshape(-1, 11),
        torch.from_numpy(labels[:, 1:]).reshape(-1),
        ignore_index=-100,
    )
    assert m.perplexity(logits, labels) == pytest.approx(math.exp(expected.item()), rel=1e-6)
    # Uniform predictions over 11 tokens: perplexity 11 whatever the labels.
    assert m.perplexity(np.zeros((2, 5, 11)), labels[:2, :5]) == pytest.approx(11.0)


def _cfg(tmp_path: Path, sub_types: list[dict[str, Any]]) -> dict[str, Any]:
    from tiny_models import write_tiny_llama

    rows = [{"text": f"the quick brown fox number {i} jumps over the lazy dog"} for i in range(12)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = {
        "name": "gen",
        "type": "HuggingfaceContainer",
        "load_dataset_config": {"data_name": "json", "data_files": "train.jsonl", "split": "train"},
        "pre_process_data_config": {"max_seq_len": 8, "max_samples": 4},
    }
    metric = {"name": "ppl", "type": "accuracy", "data_config": "gen", "sub_types": sub_types}
    return {
        "input_model": write_tiny_llama(tmp_path / "llama"),
        "data_configs": [data],
        "evaluators": {"e": {"metrics": [metric]}},
        "evaluator": "e",
        "passes": {},
    }


def _write(tmp_path: Path, cfg: dict[str, Any]) -> Path:
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    return path


def test_olive_perplexity_config_runs_and_equals_the_models_own_loss(tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from olivine.data.pipeline import build_dataloader

    workflow = load(_write(tmp_path, _cfg(tmp_path, [{"name": "perplexity"}])))
    run_local(workflow, cache_dir=tmp_path / "cache", output_dir=tmp_path / "out")
    got = json.loads((tmp_path / "out" / "input_model_metrics.json").read_text())
    value = got["ppl-perplexity"]
    value = value["value"] if isinstance(value, dict) else value
    # The model's own loss on the same samples (every sample has 8 scored tokens: one mean over all).
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "llama").eval()
    losses = []
    batches = build_dataloader(workflow.data_configs["gen"], tokenizer_path=str(tmp_path / "llama"))
    for inputs, labels in batches:
        with torch.no_grad():
            out = model(
                **{k: torch.from_numpy(v) for k, v in inputs.items()}, labels=torch.from_numpy(labels)
            )
        losses.append(out.loss.item())
    assert len(losses) == 4
    assert value == pytest.approx(math.exp(sum(losses) / len(losses)), rel=1e-4)


@pytest.mark.parametrize("sub_type", ["wer", "exact_match", "relaxed_accuracy"])
def test_olive_generated_text_sub_types_are_refused_at_validation_by_name(
    tmp_path: Path, sub_type: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load(_write(tmp_path, _cfg(tmp_path, [{"name": sub_type}])))
    line = str(info.value)
    assert "\n" not in line and line.startswith(str(tmp_path / "cfg.json"))
    assert info.value.path is not None and info.value.path.startswith("evaluators.e.metrics.0")
    assert f"Olive's accuracy sub-type '{sub_type}'" in line and "not supported by Olivine" in line
