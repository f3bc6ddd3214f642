"""OrtTransformersOptimization on models whose config has no single head count (one per stage: Swin,
SegFormer): onnxruntime's optimizer takes both numbers or neither, and failed a bare assertion (Swin) or
Olivine failed reading a list as a number (SegFormer)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from olivine.errors import ConfigError
from olivine.model.handle import ModelHandle
from olivine.model.runner import open_runner
from olivine.passes import PASSES, PassContext
from olivine.passes.transformers_optimization import _resolve_shape_params
from tiny_models import handle

pytestmark = pytest.mark.integration


def _config(**params: Any) -> Any:
    return PASSES.get("OrtTransformersOptimization").config_class.model_validate(params)


@pytest.mark.parametrize(
    ("attributes", "want"),
    [
        ({"model_type": "bert", "num_attention_heads": 12, "hidden_size": 768}, ("bert", 12, 768)),
        ({"model_type": "gpt2", "n_head": 12, "n_embd": 768}, ("gpt2", 12, 768)),
        ({"model_type": "bart", "encoder_attention_heads": 4, "d_model": 64}, ("bart", 4, 64)),
        # Swin: one head count per stage under num_heads, an int hidden_size: neither is used
        ({"model_type": "swin", "num_heads": [2, 4], "hidden_size": 32}, ("swin", 0, 0)),
        (
            {"model_type": "segformer", "num_attention_heads": [1, 2], "hidden_sizes": [16, 32]},
            ("segformer", 0, 0),
        ),
        (
            {"model_type": "bert", "num_attention_heads": 5, "hidden_size": 32},
            ("bert", 0, 0),
        ),  # not a multiple
        ({"model_type": "clip", "num_attention_heads": 8, "hidden_size": 512}, ("clip", 0, 0)),  # as Olive
    ],
)
def test_head_count_and_hidden_size_come_from_the_model_only_as_a_usable_pair(
    attributes: dict[str, Any], want: tuple[str, int, int]
) -> None:
    assert _resolve_shape_params(_config(), attributes) == want


def test_a_pair_from_the_pass_config_wins_and_half_a_pair_is_refused_by_key() -> None:
    swin = {"model_type": "swin", "num_heads": [2, 4], "hidden_size": 32}
    assert _resolve_shape_params(_config(num_heads=2, hidden_size=32), swin) == ("swin", 2, 32)
    assert _resolve_shape_params(_config(num_heads=2), swin) == ("swin", 2, 32)  # the model's int hidden size
    with pytest.raises(ConfigError, match="num_heads is set but hidden_size is not") as info:
        _resolve_shape_params(_config(num_heads=2), {"model_type": "swin", "hidden_sizes": [16, 32]})
    assert info.value.path == "hidden_size"
    with pytest.raises(ConfigError, match="not a multiple of num_heads 3"):
        _resolve_shape_params(_config(num_heads=3, hidden_size=32), swin)


def _tiny_swin(folder: Path) -> dict[str, Any]:
    from transformers import SwinConfig, SwinForImageClassification

    config = SwinConfig(
        image_size=32,
        patch_size=2,
        embed_dim=16,
        depths=[1, 1],
        num_heads=[2, 2],
        window_size=4,
        num_labels=5,
    )
    SwinForImageClassification(config).save_pretrained(str(folder))
    return {"type": "HfModel", "model_path": str(folder), "task": "image-classification"}


def _tiny_segformer(folder: Path) -> dict[str, Any]:
    from transformers import SegformerConfig, SegformerForImageClassification

    config = SegformerConfig(
        num_encoder_blocks=2,
        depths=[1, 1],
        sr_ratios=[2, 1],
        hidden_sizes=[16, 32],
        num_attention_heads=[1, 2],
        decoder_hidden_size=32,
        num_labels=5,
        image_size=32,
    )
    SegformerForImageClassification(config).save_pretrained(str(folder))
    return {"type": "HfModel", "model_path": str(folder), "task": "image-classification"}


@pytest.mark.parametrize("build", [_tiny_swin, _tiny_segformer], ids=["swin", "segformer"])
def test_a_model_with_a_head_count_per_stage_is_optimized(
    build: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    convert = PASSES.get("OnnxConversion")
    (tmp_path / "fp32").mkdir()
    fp32: ModelHandle = convert().run(
        handle(build(tmp_path / "hf")),
        convert.config_class.model_validate({"target_opset": 17}),
        tmp_path / "fp32",
        PassContext(),
    )
    optimize = PASSES.get("OrtTransformersOptimization")
    (tmp_path / "opt").mkdir()
    ctx = PassContext(logger=logging.getLogger("test.vision_optimization"))
    with caplog.at_level("INFO", logger="test.vision_optimization"):
        out = optimize().run(fp32, _config(), tmp_path / "opt", ctx)
    optimize().check_output(out)
    assert any("reads them from the graph" in r.getMessage() for r in caplog.records)
    feed = {"pixel_values": np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)}
    np.testing.assert_allclose(open_runner(out).run(feed)[0], open_runner(fp32).run(feed)[0], atol=1e-4)
