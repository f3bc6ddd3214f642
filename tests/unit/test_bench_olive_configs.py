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
        "passes": {"fixed": {"type": "DynamicToFixedShape", "dim_param": ["batch"], "dim_value": [1]}},
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
