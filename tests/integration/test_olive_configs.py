"""Real Olive run configs (tests/data/olive_configs, copied verbatim from Olive's and olive-recipes'
repositories) with only the model source swapped for a tiny local model: they run, or are refused at
validation with one line naming the file, the key and the reason.

bench/olive_configs.py runs the whole collection (1,100 configs); these are a few, one per behaviour.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from olivine.api import load, run_local
from olivine.errors import ConfigError
from tiny_models import write_tiny_bert

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[1] / "data" / "olive_configs"

#: A model source for an Olive ``model_script``: the loader the config names gets a name (Olive passes
#: model_path through) and returns a tiny joint network with the config's two inputs.
_JOINT_SCRIPT = """
import torch


class Joint(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = torch.nn.Linear(8, 4)
        self.dec = torch.nn.Linear(8, 4)

    def forward(self, encoder_output, decoder_output):
        return self.enc(encoder_output).unsqueeze(2) + self.dec(decoder_output).unsqueeze(1)


def {loader}(model_path):
    assert isinstance(model_path, str) and not model_path.startswith("/"), model_path
    torch.manual_seed(0)
    return Joint()


def {dummy}(model):
    return (torch.rand(1, 5, 8), torch.rand(1, 3, 8))
"""


def _swap_model(config: dict[str, Any], folder: Path) -> None:
    """Replace the model source (and only it) with a tiny local model."""
    model = config["input_model"]
    cfg = model.get("config", model)
    if "hf_config" in cfg:
        cfg["hf_config"]["model_name"] = str(
            write_tiny_bert(folder / "tiny_bert", max_positions=512)["model_path"]
        )
    elif model["type"] == "HfModel":
        cfg["model_path"] = write_tiny_bert(folder / "tiny_bert", max_positions=512)["model_path"]
    elif cfg.get("model_loader"):
        script = folder / cfg["model_script"]
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(_JOINT_SCRIPT.format(loader=cfg["model_loader"], dummy=cfg["dummy_inputs_func"]))
    elif cfg.get("model_path"):
        cfg["model_path"] = str(folder / "tiny.pt")


def _prepare(name: str, folder: Path) -> Path:
    source = DATA / name
    if source.suffix == ".yaml":
        import yaml

        config = yaml.safe_load(source.read_text())
    else:
        config = json.loads(source.read_text())
    _swap_model(config, folder)
    path = folder / f"{source.stem}.json"
    path.write_text(json.dumps(config, indent=2))
    return path


@pytest.mark.parametrize(
    ("name", "path", "message"),
    [
        ("recipes_nemotron_joint_trtrtx.json", "systems.local_system.accelerators.0.device", "device 'gpu'"),
        # AzureML is a host now; this config targets the GPU of its AzureML system: refused for that first.
        ("olive_0.9.2_llama2_notebook_aml.json", "systems.aml.accelerators.0.device", "device 'gpu'"),
        ("olive_0.6.0_falcon.json", "input_model.hf_config", "removed in Olive 0.7"),
        ("olive_0.2.0_resnet_dynamic.json", "input_model.model_storage_kind", "removed in Olive 0.3"),
    ],
)
def test_olive_config_is_refused_at_validation_naming_file_and_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, path: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    config = _prepare(name, tmp_path)
    with pytest.raises(ConfigError) as info:
        load(config)
    assert info.value.path == path
    assert message in info.value.message
    assert str(info.value).startswith(f"{config}: {path}: ")
    assert "\n" not in str(info.value)


def test_olive_skills_workflow_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    workflow = load(_prepare("olive_head_skills_workflow.yaml", tmp_path))
    assert [p.type for p in workflow.passes] == ["OnnxConversion", "OrtTransformersOptimization"]
    assert workflow.config.engine.output_dir == "olive-output"


def test_olive_test_default_engine_config_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_local(load(_prepare("olive_head_default_engine.json", tmp_path)))
    assert result.best is not None and result.best.model.kind == "onnx"
    model_config = json.loads((result.output_dir / "model_config.json").read_text())
    assert model_config["type"] == "ONNXModel"


def test_recipe_with_model_loader_name_onnx_output_dir_and_no_artifacts_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import onnxruntime as ort

    monkeypatch.chdir(tmp_path)
    shutil.rmtree(tmp_path / "build", ignore_errors=True)
    run_local(load(_prepare("recipes_parakeet_joint_fp32.json", tmp_path)))
    out = tmp_path / "build" / "onnx_models_fp32"
    # no_artifacts: the model and its config only (the tiny weights are under the external-data threshold).
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert names == ["joint.onnx", "model_config.json"]
    session = ort.InferenceSession(str(out / "joint.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["encoder_output", "decoder_output"]
