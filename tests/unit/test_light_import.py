"""``import olivine`` and ``olivine --help`` must not import heavy libraries (checked in a fresh process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ["torch", "onnxruntime", "onnx", "transformers", "ray", "azure", "numpy"]


def _imported_after(code: str) -> list[str]:
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return loaded


def test_import_olivine_loads_no_heavy_library() -> None:
    assert _imported_after("import olivine, olivine.api, olivine.errors") == []


def test_config_and_resolve_modules_load_no_heavy_library() -> None:
    code = "import olivine.config.loader, olivine.engine.resolve, olivine.passes.base"
    assert [m for m in _imported_after(code) if m != "numpy"] == []


def test_cli_help_loads_no_heavy_library() -> None:
    code = "from olivine.cli.main import build_parser\nbuild_parser().format_help()"
    assert _imported_after(code) == []


def test_loading_a_workflow_with_data_configs_loads_no_heavy_library(tmp_path: Path) -> None:
    """What ``olivine run`` does before it submits: validate and resolve (the submit path's latency)."""
    (tmp_path / "model.onnx").write_bytes(b"")
    dummy = {"input_names": ["x"], "input_shapes": [[1, 4]]}
    config = {
        "input_model": {"type": "ONNXModel", "model_path": "model.onnx"},
        "data_configs": [{"name": "d", "type": "DummyDataContainer", "load_dataset_config": dummy}],
        "evaluators": {
            "e": {
                "metrics": [
                    {"name": "l", "type": "latency", "data_config": "d", "sub_types": [{"name": "avg"}]}
                ]
            }
        },
        "passes": {"q": {"type": "OnnxDynamicQuantization"}},
        "engine": {"evaluator": "e"},
    }
    (tmp_path / "cfg.json").write_text(json.dumps(config))
    assert _imported_after(f"from olivine import api\napi.load({str(tmp_path / 'cfg.json')!r})") == []
