"""Built-in containers and components producing batches: dummy, token dummy, numpy, raw, local tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from olivine.config.data import DataConfig
from olivine.data import build_dataloader, model_input_names
from olivine.data.loader import batching_loader, collate
from olivine.data.tables import parse_split, read_rows, slice_rows
from olivine.errors import DataError, NotSupportedError
from olivine.model.handle import ModelHandle


def _dc(**config: Any) -> DataConfig:
    return DataConfig.model_validate({"name": "d", **config})


def _onnx_model(path: Path, inputs: list[str]) -> ModelHandle:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", [inputs[0]], ["out"])],
        "g",
        [helper.make_tensor_value_info(n, TensorProto.INT64, ["b", "s"]) for n in inputs],
        [helper.make_tensor_value_info("out", TensorProto.INT64, ["b", "s"])],
    )
    onnx.save_model(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path)
    )
    return ModelHandle(kind="onnx", config={"model_path": str(path)})


def test_dummy_container_yields_whole_batches_of_ones() -> None:
    dc = _dc(
        type="DummyDataContainer",
        load_dataset_config={
            "input_shapes": [[2, 3], [2]],
            "input_names": ["a", "b"],
            "input_types": ["float", "int64"],
        },
    )
    loader = build_dataloader(dc)
    assert len(loader) == 32 and loader.batch_size is None
    inputs, labels = loader.first_batch()
    assert inputs["a"].dtype == np.float32 and inputs["a"].shape == (2, 3) and inputs["a"].sum() == 6
    assert inputs["b"].dtype == np.int64
    assert labels is not None and labels.tolist() == [0]


def test_dummy_container_without_names_uses_the_model_input_names(tmp_path: Path) -> None:
    model = _onnx_model(tmp_path / "m.onnx", ["ids", "mask"])
    dc = _dc(
        type="DummyDataContainer",
        load_dataset_config={
            "input_shapes": [[1, 4], [1, 4]],
            "input_types": ["int64", "int64"],
            "max_samples": 2,
        },
    )
    inputs, _ = build_dataloader(dc, model=model).first_batch()
    assert list(inputs) == ["ids", "mask"]
    with pytest.raises(DataError, match="input names are unknown"):
        build_dataloader(dc).first_batch()


def test_transformers_dummy_container_produces_the_models_token_inputs(tmp_path: Path) -> None:
    model = _onnx_model(tmp_path / "m.onnx", ["input_ids", "attention_mask"])
    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "config.json").write_text(json.dumps({"vocab_size": 7}))
    dc = _dc(
        type="TransformersDummyDataContainer",
        load_dataset_config={"seq_len": 16, "max_samples": 5},
        dataloader_config={"batch_size": 2},
    )
    loader = build_dataloader(dc, model=model, tokenizer_path=str(tmp_path / "tok"))
    batches = list(loader)
    assert len(loader) == 3 and [b[0]["input_ids"].shape[0] for b in batches] == [2, 2, 1]
    inputs = batches[0][0]
    assert sorted(inputs) == ["attention_mask", "input_ids"]
    assert inputs["input_ids"].shape == (2, 16) and inputs["input_ids"].max() < 7
    assert inputs["attention_mask"].min() == 1


def test_transformers_dummy_container_rejects_inputs_it_cannot_make(tmp_path: Path) -> None:
    model = _onnx_model(tmp_path / "m.onnx", ["input_ids", "pixel_values"])
    dc = _dc(type="TransformersDummyDataContainer")
    with pytest.raises(NotSupportedError, match="pixel_values"):
        build_dataloader(dc, model=model)


def test_transformers_dummy_container_needs_a_model_config_for_past_key_values(tmp_path: Path) -> None:
    from olivine.errors import DataError

    model = _onnx_model(tmp_path / "m.onnx", ["input_ids", "past_key_values.0.key"])
    dc = _dc(type="TransformersDummyDataContainer")
    with pytest.raises(DataError, match=r"config\.json"):
        build_dataloader(dc, model=model)


def test_model_input_names_skips_initializers_and_reads_io_config(tmp_path: Path) -> None:
    assert model_input_names(_onnx_model(tmp_path / "m.onnx", ["x", "y"])) == ["x", "y"]
    torch_like = ModelHandle(kind="pytorch", config={"io_config": {"input_names": ["features"]}})
    assert model_input_names(torch_like) == ["features"]
    assert model_input_names(ModelHandle(kind="hf", config={})) is None


def test_numpy_dataset_reads_npz_inputs_and_labels(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", x=np.arange(10.0).reshape(5, 2), label=np.array([0, 1, 0, 1, 1]))
    np.savez(tmp_path / "b.npz", x=np.ones((1, 2)), label=np.array([7]))
    dc = _dc(
        load_dataset_config={"type": "numpy_dataset", "data_files": ["a.npz", "b.npz"]},
        dataloader_config={"batch_size": 4, "drop_last": True},
    )
    loader = build_dataloader(dc, base_dir=tmp_path)
    batches = list(loader)
    assert len(loader) == 1 and len(batches) == 1
    inputs, labels = batches[0]
    assert list(inputs) == ["x"] and inputs["x"].shape == (4, 2)
    assert labels is not None and labels.tolist() == [0, 1, 0, 1]


def test_numpy_dataset_reads_named_npy_files_and_checks_an_explicit_label(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((3, 2), dtype=np.float32))
    dc = _dc(
        load_dataset_config={"type": "numpy_dataset", "data_files": {"input": "x.npy"}, "max_samples": 2}
    )
    inputs, labels = build_dataloader(dc, base_dir=tmp_path).first_batch()
    assert labels is None and inputs["input"].shape == (1, 2)
    assert len(build_dataloader(dc, base_dir=tmp_path)) == 2
    named = _dc(
        load_dataset_config={"type": "numpy_dataset", "data_files": {"input": "x.npy"}, "label_name": "y"}
    )
    with pytest.raises(DataError, match="label array 'y' not found"):
        build_dataloader(named, base_dir=tmp_path)


def test_raw_container_reads_one_binary_file_per_sample(tmp_path: Path) -> None:
    (tmp_path / "raw" / "data").mkdir(parents=True)
    for i in range(3):
        np.full((1, 2), i, dtype=np.float32).tofile(tmp_path / "raw" / "data" / f"{i}.bin")
    np.save(tmp_path / "raw" / "labels.npy", np.array([5, 6, 7]))
    dc = _dc(
        type="RawDataContainer",
        load_dataset_config={
            "data_dir": "raw",
            "input_names": ["data"],
            "input_shapes": [[1, 2]],
            "input_suffix": ".bin",
            "annotations_file": "labels.npy",
        },
    )
    batches = list(build_dataloader(dc, base_dir=tmp_path))
    assert [b[0]["data"][0, 0] for b in batches] == [0.0, 1.0, 2.0]
    assert [int(b[1]) for b in batches if b[1] is not None] == [5, 6, 7]


def test_batching_loader_shuffles_deterministically_and_keeps_every_sample() -> None:
    samples = [({"x": np.array([i])}, i) for i in range(10)]
    first = [b[1].tolist() for b in batching_loader(samples, batch_size=3, shuffle=True) if b[1] is not None]
    second = [b[1].tolist() for b in batching_loader(samples, batch_size=3, shuffle=True) if b[1] is not None]
    assert first == second
    order = [label for batch in first for label in batch]
    assert sorted(order) == list(range(10)) and order != list(range(10))


def test_batching_loader_chunks_an_iterable_of_unknown_length() -> None:
    loader = batching_loader((({"x": np.array([i])}, i) for i in range(5)), batch_size=2)
    with pytest.raises(TypeError):
        len(loader)
    assert [b[0]["x"].shape[0] for b in loader] == [2, 2, 1]


def test_collate_converts_torch_tensors_and_lists() -> None:
    torch = pytest.importorskip("torch")
    inputs, labels = collate([({"ids": torch.tensor([1, 2])}, torch.tensor(0)), ({"ids": [3, 4]}, 1)], None)
    assert inputs["ids"].tolist() == [[1, 2], [3, 4]]
    assert labels is not None and labels.tolist() == [0, 1]


def test_collate_explains_ragged_samples() -> None:
    with pytest.raises(DataError, match="padding"):
        collate([({"ids": np.arange(3)}, 0), ({"ids": np.arange(4)}, 1)], None)


def test_read_rows_types_csv_columns_like_datasets(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text('text,label,score\n"hello, world",1,0.5\nbye,0,\n')
    rows = read_rows("csv", [tmp_path / "t.csv"])
    assert rows == [
        {"text": "hello, world", "label": 1, "score": 0.5},
        {"text": "bye", "label": 0, "score": None},
    ]


def test_read_rows_reads_json_lines_a_field_and_columns(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"t": "x", "label": 0}\n\n{"t": "y", "label": 1}\n')
    (tmp_path / "b.json").write_text(json.dumps({"version": 1, "data": [{"t": "z", "label": 2}]}))
    (tmp_path / "c.json").write_text(json.dumps({"t": ["u", "v"], "label": [3, 4]}))
    assert [r["t"] for r in read_rows("json", [tmp_path / "a.jsonl"])] == ["x", "y"]
    assert read_rows("json", [tmp_path / "b.json"], field="data") == [{"t": "z", "label": 2}]
    assert read_rows("json", [tmp_path / "c.json"]) == [{"t": "u", "label": 3}, {"t": "v", "label": 4}]


def test_read_rows_reads_parquet(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"t": ["a", "b"], "label": [1, 0]}), tmp_path / "t.parquet")
    assert read_rows("parquet", [tmp_path / "t.parquet"]) == [{"t": "a", "label": 1}, {"t": "b", "label": 0}]


@pytest.mark.parametrize(
    ("split", "expected"),
    [
        ("train", list(range(10))),
        ("train[:3]", [0, 1, 2]),
        ("train[8:]", [8, 9]),
        ("train[80%:]", [8, 9]),
        ("train[-2:]", [8, 9]),
    ],
)
def test_split_slices_rows_like_datasets(split: str, expected: list[int]) -> None:
    name, start, stop = parse_split(split)
    assert name == "train"
    assert [r["i"] for r in slice_rows([{"i": i} for i in range(10)], start, stop)] == expected


def test_parse_split_rejects_other_shapes() -> None:
    with pytest.raises(ValueError):
        parse_split("train[::2]")


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    from transformers import BertTokenizerFast

    folder = tmp_path_factory.mktemp("tok")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "movie", "very", "a"]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(str(folder))
    return folder


def test_huggingface_container_tokenizes_a_local_csv(tmp_path: Path, tokenizer_dir: Path) -> None:
    (tmp_path / "d.csv").write_text("sentence,label\na good movie,1\nvery bad,0\nbad movie,0\n")
    dc = _dc(
        type="HuggingfaceContainer",
        load_dataset_config={"data_name": "csv", "data_files": "d.csv", "split": "train[:2]"},
        pre_process_data_config={"input_cols": ["sentence"], "max_length": 8, "padding": "max_length"},
        dataloader_config={"batch_size": 2},
    )
    inputs, labels = build_dataloader(dc, tokenizer_path=str(tokenizer_dir), base_dir=tmp_path).first_batch()
    assert labels is not None and labels.tolist() == [1, 0]
    assert inputs["input_ids"].shape == (2, 8) and inputs["input_ids"].dtype == np.int64
    # [CLS] a good movie [SEP] [PAD]...: ids 2, 9, 5, 7, 3, 0
    assert inputs["input_ids"][0, :6].tolist() == [2, 9, 5, 7, 3, 0]
    assert inputs["attention_mask"][1].tolist() == [1, 1, 1, 1, 0, 0, 0, 0]


def test_huggingface_container_feature_extraction_task_keeps_no_labels(
    tmp_path: Path, tokenizer_dir: Path
) -> None:
    (tmp_path / "d.jsonl").write_text('{"text": "good"}\n{"text": "very good movie"}\n')
    dc = _dc(
        type="HuggingfaceContainer",
        load_dataset_config={"data_name": "json", "data_files": {"test": "d.jsonl"}, "split": "test"},
        pre_process_data_config={
            "model_name": str(tokenizer_dir),
            "input_cols": ["text"],
            "task": "feature-extraction",
        },
        dataloader_config={"batch_size": 2},
    )
    inputs, labels = build_dataloader(dc, base_dir=tmp_path).first_batch()
    assert labels is None
    assert inputs["input_ids"].shape == (2, 5)  # padding=True pads to the longest row


def test_huggingface_container_rejects_a_hub_tokenizer_name(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("sentence,label\ngood,1\n")
    dc = _dc(
        type="HuggingfaceContainer",
        load_dataset_config={"data_name": "csv", "data_files": "d.csv", "split": "train"},
        pre_process_data_config={"model_name": "bert-base-uncased", "input_cols": ["sentence"]},
    )
    with pytest.raises(NotSupportedError, match="no model hub"):
        build_dataloader(dc, base_dir=tmp_path)
