"""Data configs: resolving components, checking parameters, user scripts, local paths and fingerprints."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from olivine.config.data import DataConfig
from olivine.data import (
    build_dataloader,
    content_fingerprint,
    local_paths,
    post_processor,
    rewrite_paths,
    validate_data_config,
)
from olivine.data.user_script import load_object, load_user_script
from olivine.errors import ConfigError, DataError, NotSupportedError

SCRIPT = """
import numpy as np
from olivine.data.registry import Registry


@Registry.register_dataset()
def my_data(data_dir, count=4):
    return [({"x": np.full(2, i, dtype=np.float32)}, i % 2) for i in range(count)]


@Registry.register_pre_process("Double")
def double(dataset, factor=2):
    return [({"x": d["x"] * factor}, label) for d, label in dataset]


@Registry.register_dataloader()
def pairs(dataset, batch_size=2):
    for i in range(0, len(dataset), batch_size):
        chunk = dataset[i : i + batch_size]
        yield {"x": np.stack([d["x"] for d, _ in chunk])}, np.array([label for _, label in chunk])


@Registry.register_post_process()
def scaled(output, scale):
    return output if scale is None else output * scale


def plain_loader(data_dir):
    return [({"x": np.zeros(2, dtype=np.float32)}, 0)]


def anything(data_dir, **kwargs):
    return [({"x": np.ones(2, dtype=np.float32) * len(kwargs)}, 0)]
"""


@pytest.fixture
def base(tmp_path: Path) -> Path:
    (tmp_path / "script.py").write_text(SCRIPT)
    (tmp_path / "data").mkdir()
    np.savez(tmp_path / "data" / "a.npz", x=np.arange(6, dtype=np.float32).reshape(3, 2), label=np.arange(3))
    return tmp_path


def _dc(**config: Any) -> DataConfig:
    return DataConfig.model_validate({"name": "d", **config})


def _error(dc: DataConfig, base: Path, kind: type[Exception] = ConfigError) -> Any:
    with pytest.raises(kind) as info:
        validate_data_config(dc, base_dir=base)
    return info.value


def test_validate_data_config_names_the_full_key_path_of_a_misspelled_builtin_param(base: Path) -> None:
    dc = _dc(
        type="HuggingfaceContainer",
        load_dataset_config={"data_name": "csv", "data_files": "data/a.npz", "split": "train"},
        pre_process_data_config={"input_cols": ["text"], "max_lenght": 8},
    )
    error = _error(dc, base)
    assert error.path == "data_configs.d.pre_process_data_config.params.max_lenght"
    assert "did you mean 'max_length'" in error.message


def test_validate_data_config_checks_user_component_params_against_the_signature(base: Path) -> None:
    dc = _dc(user_script="script.py", load_dataset_config={"type": "my_data", "cuont": 3})
    error = _error(dc, base)
    assert error.path == "data_configs.d.load_dataset_config.params.cuont"
    assert "did you mean 'count'" in error.message


def test_validate_data_config_accepts_any_param_for_a_kwargs_function(base: Path) -> None:
    dc = _dc(user_script="script.py", load_dataset_config={"type": "anything", "a": 1, "b": 2})
    validate_data_config(dc, base_dir=base)
    inputs, _ = build_dataloader(dc, base_dir=base).first_batch()
    assert inputs["x"].tolist() == [[2.0, 2.0]]


def test_validate_data_config_lists_allowed_containers_for_an_unknown_type(base: Path) -> None:
    error = _error(_dc(type="HuggingFaceDataContainer"), base)
    assert error.path == "data_configs.d.type"
    assert "HuggingfaceContainer" in error.message and "DummyDataContainer" in error.message


def test_validate_data_config_suggests_a_close_component_name(base: Path) -> None:
    error = _error(_dc(user_script="script.py", load_dataset_config={"type": "my_dat"}), base)
    assert error.path == "data_configs.d.load_dataset_config.type"
    assert "did you mean 'my_data'" in error.message


def test_validate_data_config_requires_a_dataset_for_a_plain_data_container(base: Path) -> None:
    error = _error(_dc(), base)
    assert error.path == "data_configs.d.load_dataset_config.type"


def test_validate_data_config_needs_the_train_split_for_a_single_data_file(base: Path) -> None:
    dc = _dc(
        type="HuggingfaceContainer", load_dataset_config={"data_name": "csv", "data_files": "data/a.npz"}
    )
    error = _error(dc, base)
    assert error.path == "data_configs.d.load_dataset_config.params.split"
    assert "'train'" in error.message


def test_validate_data_config_names_a_missing_data_file(base: Path) -> None:
    dc = _dc(load_dataset_config={"type": "numpy_dataset", "data_files": ["data/a.npz", "data/b.npz"]})
    error = _error(dc, base)
    assert error.path == "data_configs.d.load_dataset_config.params.data_files.1"


def test_validate_data_config_rejects_olive_components_olivine_lacks(base: Path) -> None:
    dc = _dc(
        type="TransformersDummyDataContainer",
        dataloader_config={"type": "dataloader_with_ignored_batch_fields"},
    )
    error = _error(dc, base, NotSupportedError)
    assert "dataloader_with_ignored_batch_fields" in str(error)


def test_component_types_are_case_insensitive_and_registered_names_win(base: Path) -> None:
    dc = _dc(
        user_script="script.py",
        load_dataset_config={"type": "MY_DATA", "count": 3},
        pre_process_data_config={"type": "double", "factor": 10},
        dataloader_config={"type": "pairs", "batch_size": 2},
    )
    loader = build_dataloader(dc, base_dir=base)
    batches = list(loader)
    assert [b[0]["x"][:, 0].tolist() for b in batches] == [[0.0, 10.0], [20.0]]
    assert batches[0][1].tolist() == [0, 1]
    assert loader.batch_size == 2


def test_a_plain_function_in_the_user_script_is_a_component(base: Path) -> None:
    dc = _dc(user_script="script.py", load_dataset_config={"type": "plain_loader"})
    inputs, labels = build_dataloader(dc, base_dir=base).first_batch()
    assert inputs["x"].shape == (1, 2)
    assert labels is not None and labels.tolist() == [0]


def test_post_processor_passes_none_for_a_required_param_left_out(base: Path) -> None:
    dc = _dc(
        user_script="script.py",
        load_dataset_config={"type": "my_data"},
        post_process_data_config={"type": "scaled"},
    )
    assert post_processor(dc, base_dir=base)(np.array([1.0, 2.0])).tolist() == [1.0, 2.0]
    dc2 = _dc(
        user_script="script.py",
        load_dataset_config={"type": "my_data"},
        post_process_data_config={"type": "scaled", "scale": 3},
    )
    assert post_processor(dc2, base_dir=base)(np.array([1.0])).tolist() == [3.0]


def test_builtin_text_classification_post_process_takes_the_argmax(base: Path) -> None:
    dc = _dc(
        type="HuggingfaceContainer",
        load_dataset_config={"data_name": "csv", "data_files": "x.csv", "split": "train"},
        pre_process_data_config={"input_cols": ["text"]},
        post_process_data_config={"task": "text-classification"},
    )
    post = post_processor(dc, base_dir=base)
    assert post({"logits": np.array([[0.1, 0.9], [2.0, 1.0]])}).tolist() == [1, 0]


def test_user_component_failure_is_a_data_error_naming_the_config(base: Path) -> None:
    dc = _dc(user_script="script.py", load_dataset_config={"type": "my_data", "count": "many"})
    with pytest.raises(DataError, match="data config 'd', load_dataset 'my_data' failed"):
        build_dataloader(dc, base_dir=base)


def test_a_user_function_returning_none_is_named(tmp_path: Path) -> None:
    """A forgotten return failed later as "'NoneType' object is not iterable", naming nothing."""
    (tmp_path / "none.py").write_text(
        "from olivine.data.registry import Registry\n\n"
        "@Registry.register_dataset()\ndef forgot(data_dir=None):\n    data = [1, 2]\n"
    )
    dc = _dc(user_script="none.py", load_dataset_config={"type": "forgot"})
    with pytest.raises(DataError, match=r"load_dataset 'forgot' returned None \(does the function return"):
        build_dataloader(dc, base_dir=tmp_path)


def test_two_user_scripts_may_register_the_same_name(tmp_path: Path) -> None:
    for name, value in (("one", 1.0), ("two", 2.0)):
        (tmp_path / f"{name}.py").write_text(
            "import numpy as np\nfrom olivine.data.registry import Registry\n\n"
            "@Registry.register_dataset('shared')\n"
            f"def load(data_dir):\n    return [({{'x': np.array([{value}])}}, 0)]\n"
        )
    for name, value in (("one", 1.0), ("two", 2.0)):
        dc = _dc(user_script=f"{name}.py", load_dataset_config={"type": "shared"})
        assert build_dataloader(dc, base_dir=tmp_path).first_batch()[0]["x"].tolist() == [[value]]


def test_load_user_script_caches_by_content_and_reloads_an_edited_file(tmp_path: Path) -> None:
    script = tmp_path / "s.py"
    script.write_text("VALUE = 1\n")
    first = load_user_script(script)
    assert load_user_script(script) is first
    script.write_text("VALUE = 2\n")
    assert load_user_script(script).VALUE == 2


def test_load_user_script_puts_script_dir_on_sys_path(tmp_path: Path) -> None:
    helpers = tmp_path / "helpers"
    helpers.mkdir()
    (helpers / "olivine_test_helper_mod.py").write_text("NUMBER = 7\n")
    (tmp_path / "s.py").write_text("from olivine_test_helper_mod import NUMBER\n")
    try:
        assert load_user_script("s.py", "helpers", base_dir=tmp_path).NUMBER == 7
    finally:
        sys.path.remove(str(helpers.resolve()))
        sys.modules.pop("olivine_test_helper_mod", None)


def test_olive_user_scripts_import_olives_registry_unchanged(tmp_path: Path) -> None:
    (tmp_path / "olive_style.py").write_text(
        "import numpy as np\nfrom olive.data.registry import Registry\n\n"
        "@Registry.register_dataset()\ndef olive_data(data_dir):\n    return [({'x': np.zeros(1)}, 1)]\n"
    )
    dc = _dc(user_script="olive_style.py", load_dataset_config={"type": "olive_data"})
    assert build_dataloader(dc, base_dir=tmp_path).first_batch()[1].tolist() == [1]


def test_load_object_suggests_a_close_function_name(base: Path) -> None:
    with pytest.raises(ConfigError, match="did you mean 'plain_loader'"):
        load_object("plain_loadr", "script.py", None, base_dir=base)


def test_local_paths_lists_every_file_the_config_reads(base: Path) -> None:
    dc = _dc(
        user_script="script.py",
        script_dir="data",
        load_dataset_config={
            "type": "numpy_dataset",
            "data_files": {"x": "data/x.npy", "label": "data/y.npy"},
        },
    )
    assert local_paths(dc) == [
        ("user_script", "script.py"),
        ("script_dir", "data"),
        ("load_dataset_config.params.data_files.x", "data/x.npy"),
        ("load_dataset_config.params.data_files.label", "data/y.npy"),
    ]


def test_local_paths_joins_hf_data_files_under_data_dir(base: Path) -> None:
    dc = _dc(
        type="HuggingfaceContainer",
        load_dataset_config={
            "data_name": "csv",
            "data_dir": "data",
            "data_files": ["a.csv"],
            "split": "train",
        },
    )
    assert local_paths(dc) == [
        ("load_dataset_config.params.data_dir", "data"),
        ("load_dataset_config.params.data_files.0", str(Path("data") / "a.csv")),
    ]


def test_local_paths_includes_a_model_name_only_when_it_is_a_local_folder(base: Path) -> None:
    (base / "tok").mkdir()
    for name in ("tok", "bert-base-uncased"):
        dc = _dc(
            type="HuggingfaceContainer",
            load_dataset_config={"data_name": "csv", "data_files": "a.csv", "split": "train"},
            pre_process_data_config={"model_name": name, "input_cols": ["t"]},
        )
        listed = [key for key, _ in local_paths(dc, base_dir=base)]
        assert ("pre_process_data_config.params.model_name" in listed) is (name == "tok")


def test_rewrite_paths_replaces_by_key_path_or_by_listed_value(base: Path) -> None:
    dc = _dc(
        user_script="script.py",
        load_dataset_config={"type": "numpy_dataset", "data_files": ["a.npz", "b.npz", "a.npz"]},
    )
    new = rewrite_paths(
        dc,
        {
            "user_script": "/bundle/s.py",
            "load_dataset_config.params.data_files.1": "/bundle/b.npz",
            "a.npz": "/bundle/a.npz",
            "unrelated.txt": "/bundle/unrelated.txt",
        },
    )
    assert new.user_script == "/bundle/s.py"
    assert new.load_dataset_config is not None
    assert new.load_dataset_config.params["data_files"] == ["/bundle/a.npz", "/bundle/b.npz", "/bundle/a.npz"]
    assert dc.user_script == "script.py"
    key_wins = rewrite_paths(dc, {"script.py": "/by/value.py", "user_script": "/by/key.py"})
    assert key_wins.user_script == "/by/key.py"


def test_content_fingerprint_follows_file_bytes_not_file_locations(base: Path) -> None:
    dc = _dc(load_dataset_config={"type": "numpy_dataset", "data_files": "data/a.npz"})
    before = content_fingerprint(dc, base_dir=base)
    moved = base / "elsewhere.npz"
    moved.write_bytes((base / "data" / "a.npz").read_bytes())
    moved_dc = rewrite_paths(dc, {"load_dataset_config.params.data_files": str(moved)})
    assert content_fingerprint(moved_dc, base_dir=base) == before
    np.savez(base / "data" / "a.npz", x=np.zeros((3, 2), dtype=np.float32), label=np.arange(3))
    assert content_fingerprint(dc, base_dir=base) != before
    batch_changed = _dc(
        load_dataset_config={"type": "numpy_dataset", "data_files": str(moved)},
        dataloader_config={"batch_size": 2},
    )
    assert content_fingerprint(batch_changed, base_dir=base) != before
