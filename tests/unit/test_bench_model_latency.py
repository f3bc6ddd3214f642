"""bench/model_latency.py: every ONNX model is timed with the run config's latency session settings."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import model_latency

REPO = Path(__file__).resolve().parents[2]


def test_config_session_takes_the_latency_metrics_optimizer_settings_not_its_threads(tmp_path: Path) -> None:
    session = model_latency.config_session(REPO / "examples" / "minilm-search" / "config.json")
    assert session == {
        "extra_session_config": {"optimization.disable_specified_optimizers": "SkipLayerNormFusion"}
    }
    assert model_latency.config_session(REPO / "examples" / "minilm" / "config.json") == {}
    bare = tmp_path / "c.json"
    bare.write_text(json.dumps({"evaluators": {"e": {"metrics": [{"name": "l", "type": "latency"}]}}}))
    assert model_latency.config_session(bare) == {}
