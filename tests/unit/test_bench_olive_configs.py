"""bench/olive_configs.py: running Olive's own configs, here its --cpu-fallback audit mode."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import olive_configs

from tiny_models import write_onnx_mlp


def _work(tmp_path: Path) -> Path:
    model = write_onnx_mlp(tmp_path / "src" / "onnx")
    gpu = {"accelerators": [{"device": "gpu", "execution_providers": ["CUDAExecutionProvider"]}]}
    cfg = {
        "input_model": model,
        "systems": {"local_system": {"type": "LocalSystem", **gpu}},
        "passes": {"fixed": {"type": "DynamicToFixedShape", "dim_param": ["batch_size"], "dim_value": [1]}},
        "target": "local_system",
    }
    (tmp_path / "src" / "gpu.json").write_text(json.dumps(cfg))
    entry = {"id": "abc", "source": "olive", "ref": "HEAD", "path": "gpu.json", "model": "onnx"}
    (tmp_path / "index.json").write_text(json.dumps([{**entry, "config": "src/gpu.json"}]))
    return tmp_path


@pytest.mark.parametrize(
    ("flags", "outcome"), [([], "refused-legitimately"), (["--cpu-fallback"], "validated")]
)
def test_cpu_fallback_validates_a_gpu_config_as_olivine_run_cpu_fallback_does(
    tmp_path: Path, flags: list[str], outcome: str
) -> None:
    work = _work(tmp_path)
    out = tmp_path / "rows.json"
    assert olive_configs.main(["run", "--work", str(work), "--json", str(out), *flags]) == 0
    (row,) = json.loads(out.read_text())
    assert row["outcome"] == outcome
    if outcome != "validated":
        assert "device 'gpu' is not supported" in row["reason"]


def _surgeries(*surgeries: dict[str, object]) -> dict[str, object]:
    return {"passes": {"gs": {"type": "GraphSurgeries", "surgeries": list(surgeries)}}}


def test_surgeon_inputs_are_the_input_names_surgeons_need_before_their_own_renames() -> None:
    config = _surgeries(
        {"surgeon": "RenameInputs", "old_names": ["input.1"], "new_names": ["pixel_values"]},
        {"surgeon": "RenameInputDims", "input_name": "pixel_values", "dim_idx": 0, "dim_name": "n"},
        {"surgeon": "RenameInputDims", "input_name": "image_grid_thw", "dim_idx": 0, "dim_name": "n"},
        {"surgeon": "InferShapes"},
    )
    assert olive_configs.surgeon_inputs(config) == ["input.1", "image_grid_thw"]


def test_onnx_stand_in_takes_the_input_name_a_surgeon_renames(tmp_path: Path) -> None:
    import onnx

    tiny = {"onnx": write_onnx_mlp(tmp_path / "tiny")}
    config = {
        "input_model": {"type": "ONNXModel", "model_path": "sam2.onnx"},
        **_surgeries({"surgeon": "RenameInputs", "old_names": ["input.1"], "new_names": ["pixel_values"]}),
    }
    assert olive_configs.swap_model(config, tmp_path / "cfg", tiny, "0123456789ab") == "onnx"
    model = config["input_model"]
    proto = onnx.load(str(Path(model["model_path"]) / model["onnx_file_name"]))
    assert [i.name for i in proto.graph.input] == ["input.1"]
    assert proto.graph.node[0].input[0] == "input.1"


def test_pytorch_stand_in_has_the_inputs_surgeons_name_when_io_config_is_a_recipe_function(
    tmp_path: Path,
) -> None:
    from tiny_models import write_mlp

    tiny = {"mlp": write_mlp(tmp_path / "tiny")}
    config = {
        "input_model": {
            "type": "PyTorchModel",
            "model_path": "Qwen/Qwen3-VL-2B-Instruct",
            "model_loader": "get_vision_model",
            "model_script": "user_script.py",
            "io_config": "get_vision_io_config",
        },
        **_surgeries(
            {"surgeon": "RenameInputDims", "input_name": "image_grid_thw", "dim_idx": 0, "dim_name": "n"}
        ),
    }
    folder = tmp_path / "cfg"
    folder.mkdir()
    olive_configs.swap_model(config, folder, tiny, "0123456789ab")
    scope: dict[str, object] = {}
    sys.path.insert(0, str(folder))
    try:
        exec((folder / config["input_model"]["model_script"]).read_text(), scope)
    finally:
        sys.path.remove(str(folder))
    io = scope["get_vision_io_config"]()  # type: ignore[operator]
    assert io["input_names"] == ["image_grid_thw"]
    assert config["input_model"]["io_config"] == "get_vision_io_config"
    model = scope["get_vision_model"]()  # type: ignore[operator]
    assert model(*scope["_dummy_inputs"]())[0].shape == (2, 32)  # type: ignore[operator]


_GENERATOR = """
import json, sys
from olive.workflows import run as olive_run

with open("template.json") as f:
    config = json.load(f)
config["passes"] = {k: v for k, v in config["passes"].items() if k in sys.argv[1:]}
with open("template.json", "w") as f:  # rewrites its template, as Olive's bert.py-style scripts may
    json.dump({"broken": True}, f)
with open("generated_cpu.json", "w") as f:
    json.dump(config, f)
olive_run(config)
open("ran_olive", "w").close()
"""


def test_generated_configs_are_collected_without_running_olive_and_the_folder_is_restored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "olive").mkdir()
    (tmp_path / "olive" / "__init__.py").write_text("")
    (tmp_path / "olive" / "workflows.py").write_text("def run(config):\n    pass\n")
    (tmp_path / "gen.py").write_text(_GENERATOR)
    template = {"input_model": {"type": "HfModel"}, "passes": {"a": {"type": "X"}, "b": {"type": "Y"}}}
    (tmp_path / "template.json").write_text(json.dumps(template))
    monkeypatch.setattr(olive_configs, "OLIVE_PY", Path(sys.executable))
    found = olive_configs._generated(tmp_path, "examples/x/gen.py", ("b",))
    assert found == [("generated_cpu.json", {**template, "passes": {"b": {"type": "Y"}}})]
    assert not (tmp_path / "ran_olive").exists()  # olive.workflows.run stopped the script
    assert json.loads((tmp_path / "template.json").read_text()) == template
    assert not (tmp_path / "generated_cpu.json").exists()


def test_a_config_without_passes_is_a_run_config_when_it_evaluates() -> None:
    model = {"type": "ONNXModel", "model_path": "m"}
    assert olive_configs._is_run_config({"input_model": model, "evaluators": {}})  # recipes' eval/*.json
    assert olive_configs._is_run_config({"input_model": model, "passes": {}})
    assert not olive_configs._is_run_config({"input_model": model})  # a model description, not a workflow
    assert not olive_configs._is_run_config({"passes": {}})
