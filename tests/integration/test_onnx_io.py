"""The output check every ONNX pass runs before the cache commits it, and the external-data file name that
used to overwrite a model's own graph (committed as done, then a cache hit on a broken model)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from pydantic import ValidationError

from olivine.api import load, run_local
from olivine.errors import ConfigError, PassRunError
from olivine.model.handle import ModelHandle
from olivine.model.runner import open_runner
from olivine.passes import PASSES, PassConfig, PassContext
from olivine.passes.onnx_io import ExternalDataConfig, OnnxPass, check_onnx_file
from tiny_models import MLP_IN, write_onnx_mlp

pytestmark = pytest.mark.integration


def _mlp_file(folder: Path) -> Path:
    write_onnx_mlp(folder)
    return folder / "model.onnx"


def test_check_onnx_file_accepts_a_good_model(tmp_path: Path) -> None:
    check_onnx_file(_mlp_file(tmp_path))


def test_check_onnx_file_rejects_a_truncated_model(tmp_path: Path) -> None:
    path = _mlp_file(tmp_path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"onnx\.checker rejects model\.onnx"):
        check_onnx_file(path)


def test_check_onnx_file_rejects_missing_external_data(tmp_path: Path) -> None:
    proto = onnx.load(str(_mlp_file(tmp_path / "src")))
    path = tmp_path / "ext" / "model.onnx"
    path.parent.mkdir()
    onnx.save_model(proto, str(path), save_as_external_data=True, location="w.bin", size_threshold=0)
    (path.parent / "w.bin").unlink()
    with pytest.raises(ValueError, match=r"model\.onnx"):
        check_onnx_file(path)


def test_check_onnx_file_rejects_what_onnxruntime_cannot_load(tmp_path: Path) -> None:
    # onnx.checker does not know custom domains; onnxruntime has no kernel for this one.
    graph = helper.make_graph(
        [helper.make_node("Frobnicate", ["x"], ["y"], domain="example.custom")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("example.custom", 1)]
    path = tmp_path / "model.onnx"
    onnx.save_model(helper.make_model(graph, opset_imports=opsets, ir_version=9), str(path))
    with pytest.raises(ValueError, match=r"onnxruntime cannot load model\.onnx"):
        check_onnx_file(path)


def _relu_model(nodes: list[Any], ir_version: int = 9, out_type: int = TensorProto.FLOAT) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", out_type, [2])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=ir_version)


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            _relu_model([helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Relu", ["x"], ["y"])]),
            r"onnx\.checker rejects model\.onnx: .*single static assignment",
        ),
        (
            _relu_model([helper.make_node("Softmax", ["x"], ["y"], axis=1.5)]),
            r"onnx\.checker rejects model\.onnx: Mismatched attribute type",
        ),
        # valid ONNX for onnx.checker, but onnxruntime's type resolution refuses it
        (
            _relu_model([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.INT64)]),
            r"onnxruntime cannot load model\.onnx",
        ),
    ],
)
def test_the_check_refuses_what_onnxruntime_refuses_naming_the_problem(
    tmp_path: Path, model: onnx.ModelProto, message: str
) -> None:
    path = tmp_path / "model.onnx"
    onnx.save_model(model, str(path))
    with pytest.raises(ValueError, match=message):
        check_onnx_file(path)


def test_the_check_accepts_onnxruntime_operators_onnx_checker_does_not_know(tmp_path: Path) -> None:
    # onnxruntime registers SimplifiedLayerNormalization in the ONNX domain; every genai model uses it.
    gamma = onnx.numpy_helper.from_array(np.ones(2, np.float32), "gamma")
    graph = helper.make_graph(
        [helper.make_node("SimplifiedLayerNormalization", ["x", "gamma"], ["y"], epsilon=1e-6)],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [gamma],
    )
    path = tmp_path / "model.onnx"
    onnx.save_model(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10), str(path)
    )
    with pytest.raises(
        onnx.checker.ValidationError, match="No Op registered for SimplifiedLayerNormalization"
    ):
        onnx.checker.check_model(str(path))
    check_onnx_file(path)


@pytest.mark.parametrize(
    "name", ["model.onnx", "weights.ONNX", "../w.bin", "sub/w.bin", "", "w\x00.bin", "w\n.bin", "w" * 256]
)
def test_external_data_name_is_refused_when_it_is_not_a_plain_data_file(name: str) -> None:
    with pytest.raises(ValidationError, match="external_data_name"):
        ExternalDataConfig(external_data_name=name)


# --- through the engine --------------------------------------------------------------------------


def _workflow(folder: Path, quant: dict[str, Any]) -> Path:
    config = {
        "workflow_id": "ext",
        "input_model": write_onnx_mlp(folder / "mlp"),
        "passes": {"quantize": {"type": "OnnxDynamicQuantization", **quant}},
        "cache_dir": str(folder / "cache"),
        "output_dir": str(folder / "out"),
    }
    path = folder / "cfg.json"
    path.write_text(json.dumps(config))
    return path


def test_external_data_named_like_the_graph_is_refused_before_anything_runs(tmp_path: Path) -> None:
    # Before: the weights overwrote model.onnx, the run was committed as done, and later runs hit the cache.
    path = _workflow(tmp_path, {"save_as_external_data": True, "external_data_name": "model.onnx"})
    with pytest.raises(ConfigError, match="external_data_name") as info:
        load(path)
    assert info.value.path == "passes.quantize.external_data_name"
    cli = subprocess.run(
        [sys.executable, "-m", "olivine", "run", "--config", str(path)], capture_output=True, text=True
    )
    assert cli.returncode == 2 and "external_data_name" in cli.stderr and "cfg.json" in cli.stderr
    assert not (tmp_path / "cache").exists()


def test_external_data_with_its_own_name_is_written_beside_the_graph(tmp_path: Path) -> None:
    path = _workflow(
        tmp_path, {"save_as_external_data": True, "external_data_name": "weights.bin", "size_threshold": 0}
    )
    result = run_local(load(path))
    assert result.best is not None
    folder = Path(str(result.best.model.model_path))
    assert {"model.onnx", "weights.bin"} <= {p.name for p in folder.iterdir()}
    feed = {"input": np.ones((2, MLP_IN), dtype=np.float32)}
    assert open_runner(result.best.model).run(feed)[0].shape == (2, 8)


class _CorruptConfig(PassConfig):
    pass


class _WritesCorruptModel(OnnxPass):
    """A pass that writes a broken model, as a buggy library call would (here on purpose)."""

    name: ClassVar[str] = "WritesCorruptModel"
    config_class: ClassVar[type[PassConfig]] = _CorruptConfig
    runs: ClassVar[int] = 0

    def run(self, model: ModelHandle, config: Any, output_dir: Path, ctx: PassContext) -> ModelHandle:
        type(self).runs += 1
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "model.onnx").write_bytes(model.onnx_path.read_bytes()[:300])
        return ModelHandle(
            kind="onnx", config={"model_path": str(output_dir), "onnx_file_name": "model.onnx"}
        )


def test_a_corrupt_output_is_a_failure_and_never_a_cached_success(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        PASSES._entries, "writescorruptmodel", ("WritesCorruptModel", f"{__name__}:_WritesCorruptModel", "")
    )
    config = {
        "workflow_id": "corrupt",
        "input_model": write_onnx_mlp(tmp_path / "mlp"),
        "passes": {"broken": {"type": "WritesCorruptModel"}},
        "cache_dir": str(tmp_path / "cache"),
        "output_dir": str(tmp_path / "out"),
    }
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(config))
    workflow = load(path)
    for attempt in (1, 2):
        with pytest.raises(PassRunError, match=r"not a usable model: onnx\.checker rejects"):
            run_local(workflow)
        assert _WritesCorruptModel.runs == attempt  # the second run ran again: nothing was cached


def test_genai_companion_files_are_carried_but_not_graphs_or_weights(tmp_path: Path) -> None:
    from olivine.passes.onnx_io import carry_genai_files

    source = tmp_path / "src"
    source.mkdir()
    for name in (
        "genai_config.json",
        "tokenizer.json",
        "model.onnx",
        "model.onnx.data",
        "model.safetensors",
        ".x",
    ):
        (source / name).write_text(name)
    out = tmp_path / "out"
    out.mkdir()
    (out / "tokenizer.json").write_text("the pass's own")
    carry_genai_files(
        ModelHandle(kind="onnx", config={"model_path": str(source), "onnx_file_name": "model.onnx"}), out
    )
    assert sorted(p.name for p in out.iterdir()) == ["genai_config.json", "tokenizer.json"]
    assert (out / "tokenizer.json").read_text() == "the pass's own"
    (source / "genai_config.json").unlink()
    plain = tmp_path / "plain"
    carry_genai_files(
        ModelHandle(kind="onnx", config={"model_path": str(source), "onnx_file_name": "model.onnx"}), plain
    )
    assert not plain.exists()
