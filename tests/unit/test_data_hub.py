"""huggingface_dataset through Hugging Face ``datasets`` (olivine.data.hub): Olive's load_dataset call, the
resolve-time checks (not installed, Hub off and not cached), and loading what works offline (a packaged
builder, a local dataset folder) when ``datasets`` is installed."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from olivine.config.data import DataConfig
from olivine.data import build_dataloader, hub, local_paths, validate_data_config
from olivine.data.params import HuggingfaceDatasetParams
from olivine.errors import ConfigError, DataError

GLUE = {"data_name": "glue", "subset": "mrpc", "split": "validation"}


def _dc(load: dict[str, Any], **config: Any) -> DataConfig:
    config.setdefault("pre_process_data_config", {"input_cols": ["sentence1", "sentence2"]})
    return DataConfig.model_validate(
        {"name": "d", "type": "HuggingfaceContainer", "load_dataset_config": load, **config}
    )


@pytest.fixture
def hf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache, no offline variable, and ``datasets`` reported installed."""
    home = tmp_path / "hf"
    home.mkdir()
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_DATASETS_CACHE", "HF_HUB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setattr(hub, "datasets_installed", lambda: True)
    monkeypatch.setattr(hub, "unresolvable_hub_host", lambda: None)  # as if the network were up
    return home


def test_hub_dataset_is_refused_at_validation_when_datasets_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub, "datasets_installed", lambda: False)
    with pytest.raises(ConfigError) as info:
        validate_data_config(_dc(GLUE), base_dir=tmp_path)
    assert info.value.path == "data_configs.d.load_dataset_config.params.data_name"
    assert "olivine[datasets]" in info.value.message and "\n" not in str(info.value)


def test_hub_dataset_is_refused_at_validation_when_offline_and_not_cached(
    tmp_path: Path, hf_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(ConfigError) as info:
        validate_data_config(_dc(GLUE), base_dir=tmp_path)
    assert info.value.path == "data_configs.d.load_dataset_config.params.data_name"
    assert "HF_DATASETS_OFFLINE is set" in info.value.message and "cache" in info.value.message


def test_hub_dataset_validates_offline_when_its_canonical_repo_is_cached(
    tmp_path: Path, hf_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (hf_home / "datasets" / "nyu-mll___glue").mkdir(parents=True)
    validate_data_config(_dc(GLUE), base_dir=tmp_path)


def test_hub_dataset_validates_online_with_a_warning_that_the_hub_must_be_reachable(
    tmp_path: Path, hf_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="olivine.data.hub"):
        validate_data_config(_dc(GLUE), base_dir=tmp_path)
    assert any("'glue'" in r.getMessage() and "reachable" in r.getMessage() for r in caplog.records)


def test_hub_dataset_is_refused_at_validation_when_the_hub_host_does_not_resolve(
    tmp_path: Path, hf_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub, "unresolvable_hub_host", lambda: "huggingface.co")
    with pytest.raises(ConfigError) as info:
        validate_data_config(_dc(GLUE), base_dir=tmp_path)
    assert info.value.path == "data_configs.d.load_dataset_config.params.data_name"
    assert "huggingface.co does not resolve" in info.value.message


def test_unresolvable_hub_host_names_the_endpoints_host_and_skips_behind_a_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    def fail(*args: Any) -> Any:
        raise socket.gaierror("no network")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.example.org")
    assert hub.unresolvable_hub_host() == "hub.example.org"
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    assert hub.unresolvable_hub_host() is None


def test_load_kwargs_are_olives_load_dataset_call(tmp_path: Path) -> None:
    (tmp_path / "my_ds").mkdir()
    params = HuggingfaceDatasetParams(
        data_name="my_ds",
        subset="en",
        split="train[:10]",
        data_dir="raw",
        data_files={"train": "a.jsonl"},
        streaming=True,
        trust_remote_code=True,
    )
    assert hub.load_kwargs(params, tmp_path) == {
        "path": str(tmp_path / "my_ds"),  # a local dataset folder, made absolute
        "name": "en",
        "data_dir": "raw",  # inside the dataset, as given
        "split": "train[:10]",
        "data_files": {"train": "a.jsonl"},
        "streaming": True,
        "trust_remote_code": True,
    }
    c4 = HuggingfaceDatasetParams(
        data_name="allenai/c4", data_files={"train": "en/c4-train.00000-of-01024.json.gz"}
    )
    assert hub.load_kwargs(c4, tmp_path) == {
        "path": "allenai/c4",
        "name": None,
        "data_dir": None,
        "split": "validation",
        "data_files": {"train": "en/c4-train.00000-of-01024.json.gz"},  # a file of the Hub repository
    }
    text = HuggingfaceDatasetParams(data_name="text", data_files="lines.txt", split="train")
    assert hub.load_kwargs(text, tmp_path)["data_files"] == str(tmp_path / "lines.txt")  # a builder's: local


def test_hub_datasets_data_files_are_not_local_paths(tmp_path: Path, hf_home: Path) -> None:
    load = {
        "data_name": "allenai/c4",
        "data_files": {"validation": "en/c4-validation.json.gz"},
        "split": "validation",
    }
    assert local_paths(_dc(load), base_dir=tmp_path) == []
    validate_data_config(_dc(load), base_dir=tmp_path)  # no "file not found" for a file of the Hub repository


def test_a_local_dataset_folder_in_data_name_is_a_local_path_a_builder_name_is_not(tmp_path: Path) -> None:
    (tmp_path / "my_ds").mkdir()
    (tmp_path / "json").mkdir()  # a folder named like a builder: datasets takes the builder
    listed = local_paths(_dc({"data_name": "my_ds", "split": "train"}), base_dir=tmp_path)
    assert listed == [("load_dataset_config.params.data_name", "my_ds")]
    assert local_paths(
        _dc({"data_name": "json", "data_files": "a.json", "split": "train"}), base_dir=tmp_path
    ) == [("load_dataset_config.params.data_files", "a.json")]


# ---- with datasets installed: what works without a Hub ------------------------------------------------


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline, with an empty datasets cache of the test's own. datasets and huggingface_hub read these
    variables once, at import (maybe by an earlier test): their module constants are patched too."""
    config = pytest.importorskip("datasets.config")
    import huggingface_hub.constants

    cache = tmp_path / "hf" / "datasets"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(config, "HF_DATASETS_CACHE", cache)
    monkeypatch.setattr(config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def _rows(dc: DataConfig, base: Path) -> list[Any]:
    loader = build_dataloader(dc, base_dir=base)
    return [(inputs, labels) for inputs, labels in loader]


def test_packaged_text_builder_loads_lines_through_datasets(tmp_path: Path, offline: None) -> None:
    (tmp_path / "lines.txt").write_text("first line\nsecond line\nthird line\n")
    params = HuggingfaceDatasetParams(data_name="text", data_files="lines.txt", split="train[1:]")
    dataset = hub.load_hub_dataset(params, tmp_path)
    assert [row["text"] for row in dataset] == ["second line", "third line"]


def test_local_dataset_folder_loads_its_split_with_col_filters(tmp_path: Path, offline: None) -> None:
    folder = tmp_path / "reviews"
    folder.mkdir()
    (folder / "validation.jsonl").write_text(
        '{"text": "good", "lang": "en", "label": 1}\n{"text": "gut", "lang": "de", "label": 1}\n'
        '{"text": "bad", "lang": "en", "label": 0}\n'
    )
    params = HuggingfaceDatasetParams(data_name="reviews", split="validation", col_filters={"lang": "en"})
    dataset = hub.load_hub_dataset(params, tmp_path)
    assert [(r["text"], r["label"]) for r in dataset] == [("good", 1), ("bad", 0)]


def test_streamed_dataset_is_tokenized_up_to_max_samples(tmp_path: Path, offline: None) -> None:
    pytest.importorskip("transformers")
    from transformers import BertTokenizerFast

    tok = tmp_path / "tok"
    tok.mkdir()
    (tok / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "good", "bad"]) + "\n")
    BertTokenizerFast(vocab_file=str(tok / "vocab.txt")).save_pretrained(str(tok))
    (tmp_path / "d.txt").write_text("good\nbad\ngood bad\n")
    dc = _dc(
        {"data_name": "text", "data_files": "d.txt", "split": "train", "streaming": True},
        pre_process_data_config={
            "model_name": str(tok),
            "input_cols": ["text"],
            "max_samples": 2,
            "task": "feature-extraction",
        },
    )
    validate_data_config(dc, base_dir=tmp_path)
    batches = _rows(dc.model_copy(), tmp_path)
    assert [b[0]["input_ids"].tolist() for b in batches] == [[[2, 4, 3]], [[2, 5, 3]]]


def test_unreachable_hub_is_one_line_naming_data_name_and_offline_mode(tmp_path: Path, offline: None) -> None:
    params = HuggingfaceDatasetParams(**GLUE)
    with pytest.raises(DataError) as info:
        hub.load_hub_dataset(params, tmp_path)
    message = str(info.value)
    assert message.startswith("data_name 'glue': cannot reach the Hugging Face Hub (offline mode is on")
    assert "\n" not in message


_MAP_SCRIPT = """
import numpy as np
from olive.data.registry import Registry


@Registry.register_pre_process()
def lengths(dataset, **kwargs):
    # Olive hands a datasets.Dataset to a user pre-process: .map and .column_names work on it.
    dataset = dataset.map(lambda row: {"n": len(row["text"])})
    assert "n" in dataset.column_names
    return [({"x": np.full(2, row["n"], dtype=np.float32)}, row["label"]) for row in dataset]
"""


def test_user_pre_process_receives_the_datasets_object_as_in_olive(tmp_path: Path, offline: None) -> None:
    folder = tmp_path / "reviews"
    folder.mkdir()
    (folder / "validation.jsonl").write_text('{"text": "good", "label": 1}\n{"text": "bad!", "label": 0}\n')
    (tmp_path / "script.py").write_text(_MAP_SCRIPT)
    dc = _dc(
        {"data_name": "reviews", "split": "validation"},
        user_script="script.py",
        pre_process_data_config={"type": "lengths"},
    )
    batches = _rows(dc, tmp_path)
    assert [(b[0]["x"].tolist(), b[1].tolist()) for b in batches] == [
        ([[4.0, 4.0]], [1]),
        ([[4.0, 4.0]], [0]),
    ]
