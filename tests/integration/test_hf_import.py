"""Loading a Hugging Face model does not drag in scikit-learn and scipy (checked in fresh processes)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from olivine.hf_import import OPT_OUT_ENV
from tiny_models import write_tiny_bert

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        importlib.util.find_spec("sklearn") is None or importlib.util.find_spec("scipy") is None,
        reason="scikit-learn and scipy are not installed, so transformers cannot import them anyway",
    ),
]

PROBE = """
import json, sys
from olivine.model.handle import ModelHandle
from olivine.model.loaders import load_torch_module
module = load_torch_module(ModelHandle("hf", {"model_path": sys.argv[1], "task": "feature-extraction"}))
print(json.dumps({"class": type(module).__name__, "loaded": sorted(m for m in ("sklearn", "scipy") if m in sys.modules)}))
"""


def _load_in_fresh_process(model_dir: Path, **env: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(model_dir)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_hf_model_loads_without_importing_sklearn_or_scipy(tmp_path: Path) -> None:
    write_tiny_bert(tmp_path / "bert")
    assert _load_in_fresh_process(tmp_path / "bert") == {"class": "BertModel", "loaded": []}


def test_hf_import_opt_out_restores_the_full_import(tmp_path: Path) -> None:
    write_tiny_bert(tmp_path / "bert")
    result = _load_in_fresh_process(tmp_path / "bert", **{OPT_OUT_ENV: "1"})
    assert result == {"class": "BertModel", "loaded": ["scipy", "sklearn"]}
