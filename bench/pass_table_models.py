"""The two models of ``pass_table.py`` (MiniLM and a ResNet-18-style CNN with random weights), their data
(calibration, fidelity, latency inputs) and the by-hand onnxruntime equivalents of the passes."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from common import EXAMPLE
from model_latency import make_feed

SAMPLES = 16  # calibration samples, and (other) fidelity samples


@dataclasses.dataclass
class ModelSpec:
    description: str
    folder: Path
    fp32: Path
    export_s: float
    data_configs: dict[str, Any]
    latency_feed: dict[str, np.ndarray]
    fidelity_inputs: list[dict[str, np.ndarray]]
    fidelity_what: str
    kind: str
    _reference: dict[str, Any] = dataclasses.field(default_factory=dict)

    def outputs(self, path: Path) -> list[np.ndarray]:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        out = []
        for feed in self.fidelity_inputs:
            value = session.run(None, cast_feed(session, feed))[0].astype(np.float32)
            if self.kind == "minilm":  # mean-pooled embedding over the real tokens
                mask = feed["attention_mask"][..., None].astype(np.float32)
                value = (value * mask).sum(axis=1) / mask.sum(axis=1)
            out.append(value.reshape(-1))
        return out

    def fidelity(self, path: Path, fp32: Path) -> dict[str, float]:
        if "fp32" not in self._reference:
            self._reference["fp32"] = self.outputs(fp32)
        ref = self._reference["fp32"]
        got = self.outputs(path)
        cos = [float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))) for a, b in zip(got, ref, strict=True)]
        result = {"mean": round(float(np.mean(cos)), 5), "min": round(float(np.min(cos)), 5)}
        if self.kind == "cnn":
            agree = [int(np.argmax(a) == np.argmax(b)) for a, b in zip(got, ref, strict=True)]
            result["top1"] = round(float(np.mean(agree)), 3)
        return result


def cast_feed(session: Any, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``feed`` with each array in the session's input type (fp16 I/O models take float16)."""
    types = {"tensor(float16)": np.float16, "tensor(float)": np.float32, "tensor(int32)": np.int32}
    out = {}
    for inp in session.get_inputs():
        value = feed[inp.name]
        dtype = types.get(inp.type)
        out[inp.name] = value.astype(dtype) if dtype is not None else value
    return out


def _numpy_data_config(name: str, npz: Path) -> Any:
    from olivine.config.data import DataConfig

    return DataConfig.model_validate(
        {
            "name": name,
            "type": "DataContainer",
            "load_dataset_config": {"type": "numpy_dataset", "data_files": str(npz)},
            "dataloader_config": {"batch_size": 1},
        }
    )


def _dummy_data_config(names: list[str], shapes: list[list[int]], types: list[str]) -> Any:
    from olivine.config.data import DataConfig

    return DataConfig.model_validate(
        {
            "name": "latency",
            "type": "DummyDataContainer",
            "load_dataset_config": {"input_names": names, "input_shapes": shapes, "input_types": types},
        }
    )


# ---- MiniLM ---------------------------------------------------------------------------------------------


def minilm(folder: Path) -> ModelSpec:
    from transformers import AutoTokenizer

    from olivine.model.handle import ModelHandle
    from olivine.passes import PASSES, PassContext

    hf_dir = EXAMPLE / "model"
    if not (hf_dir / "config.json").is_file():
        raise SystemExit(f"{hf_dir} is missing: run .venv/bin/python examples/minilm/prepare.py")
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "fp32"
    if out.exists():
        import shutil

        shutil.rmtree(out)
    out.mkdir()
    cls = PASSES.get("OnnxConversion")
    start = time.perf_counter()
    handle = cls().run(
        ModelHandle(kind="hf", config={"model_path": str(hf_dir), "task": "feature-extraction"}),
        cls.config_class.model_validate({"target_opset": 17}),
        out,
        PassContext(),
    )
    export_s = time.perf_counter() - start
    tokenizer = AutoTokenizer.from_pretrained(str(hf_dir))
    sentences = (EXAMPLE / "data" / "sentences.txt").read_text(encoding="utf-8").splitlines()
    encoded = tokenizer(
        sentences[: 2 * SAMPLES], padding="max_length", truncation=True, max_length=128, return_tensors="np"
    )
    arrays = {k: np.asarray(v, dtype=np.int64) for k, v in encoded.items()}
    np.savez(folder / "calib.npz", **{k: v[:SAMPLES] for k, v in arrays.items()})
    fidelity = [{k: v[i : i + 1] for k, v in arrays.items()} for i in range(SAMPLES, 2 * SAMPLES)]
    names = ["input_ids", "attention_mask", "token_type_ids"]
    return ModelSpec(
        description="all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384), batch 1, sequence 128",
        folder=folder,
        fp32=handle.onnx_path,
        export_s=export_s,
        data_configs={
            "calib": _numpy_data_config("calib", folder / "calib.npz"),
            "latency": _dummy_data_config(names, [[1, 128]] * 3, ["int64"] * 3),
        },
        latency_feed=make_feed(names, ["int64"] * 3),
        fidelity_inputs=fidelity,
        fidelity_what=f"cosine of mean-pooled embeddings vs the fp32 ONNX model, {SAMPLES} example sentences",
        kind="minilm",
    )


# ---- ResNet-18-style CNN ----------------------------------------------------------------------------------


def _resnet18() -> Any:
    """torchvision's ResNet-18 layout (BasicBlock x [2, 2, 2, 2], 1000 classes) in plain torch."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.down = (
                nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                if stride != 1 or cin != cout
                else nn.Identity()
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(self.bn2(self.conv2(y)) + self.down(x))

    layers: list[nn.Module] = [
        nn.Conv2d(3, 64, 7, 2, 3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(3, 2, 1),
    ]
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [Block(cin, cout, stride), Block(cout, cout, 1)]
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 1000)]
    model = nn.Sequential(*layers)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    return model


def cnn(folder: Path) -> ModelSpec:
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    images = rng.standard_normal((2 * SAMPLES + 1, 3, 224, 224)).astype(np.float32)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = _resnet18()
        # BatchNorm statistics from data (as training would leave them), so activations have real ranges.
        model.train()
        with torch.no_grad():
            for i in range(0, SAMPLES, 8):
                model(torch.from_numpy(images[i : i + 8]))
        model.eval()
    (folder / "fp32").mkdir(exist_ok=True)
    fp32 = folder / "fp32" / "model.onnx"
    start = time.perf_counter()
    torch.onnx.export(
        model,
        (torch.from_numpy(images[:1]),),
        str(fp32),
        input_names=["input"],
        output_names=["output"],
        dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    export_s = time.perf_counter() - start
    np.savez(folder / "calib.npz", input=images[:SAMPLES])
    return ModelSpec(
        description="ResNet-18 layout, random weights (BatchNorm statistics from random images), 1x3x224x224",
        folder=folder,
        fp32=fp32,
        export_s=export_s,
        data_configs={
            "calib": _numpy_data_config("calib", folder / "calib.npz"),
            "latency": _dummy_data_config(["input"], [[1, 3, 224, 224]], ["float32"]),
        },
        latency_feed={"input": images[-1:]},
        fidelity_inputs=[{"input": images[i : i + 1]} for i in range(SAMPLES, 2 * SAMPLES)],
        fidelity_what=f"cosine of logits vs the fp32 ONNX model and top-1 agreement, {SAMPLES} random images",
        kind="cnn",
    )


SPECS: dict[str, Callable[[Path], ModelSpec]] = {"minilm": minilm, "cnn": cnn}


# ---- the same work by hand, with onnxruntime's tools ----------------------------------------------------


def _timed(what: str, func: Callable[[], Any]) -> tuple[str, float]:
    start = time.perf_counter()
    func()
    return what, time.perf_counter() - start


def hand_transformers_optimization(spec: ModelSpec, params: dict[str, Any], out: Path) -> tuple[str, float]:
    from onnxruntime.transformers.optimizer import optimize_model

    def work() -> None:
        model = optimize_model(
            str(spec.fp32),
            model_type=params["model_type"],
            num_heads=params["num_heads"],
            hidden_size=params["hidden_size"],
        )
        model.save_model_to_file(str(out / "model.onnx"))

    return _timed("optimizer.optimize_model + save", work)


def _preprocess(spec: ModelSpec, out: Path) -> Path:
    from onnxruntime.quantization.preprocess import quant_pre_process

    target = out / "pre.onnx"
    quant_pre_process(str(spec.fp32), str(target), auto_merge=True, save_as_external_data=True)
    return target


def hand_dynamic_quantization(spec: ModelSpec, params: dict[str, Any], out: Path) -> tuple[str, float]:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    def work() -> None:
        quantize_dynamic(
            str(_preprocess(spec, out)),
            str(out / "model.onnx"),
            per_channel=bool(params.get("per_channel", False)),
            op_types_to_quantize=params.get("op_types_to_quantize"),
            weight_type=QuantType.QInt8,
        )

    return _timed("quant_pre_process + quantize_dynamic", work)


class _Reader:
    """onnxruntime's CalibrationDataReader over the calibration ``.npz`` (one sample per batch)."""

    def __init__(self, spec: ModelSpec, model: Path) -> None:
        import onnx

        names = [i.name for i in onnx.load(str(model), load_external_data=False).graph.input]
        arrays = dict(np.load(spec.folder / "calib.npz"))
        count = len(next(iter(arrays.values())))
        self.feeds = [{n: arrays[n][i : i + 1] for n in names} for i in range(count)]
        self.index = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.index >= len(self.feeds):
            return None
        self.index += 1
        return self.feeds[self.index - 1]

    def rewind(self) -> None:
        self.index = 0


def hand_static_quantization(spec: ModelSpec, params: dict[str, Any], out: Path) -> tuple[str, float]:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.quantize import get_qdq_config, quantize

    per_channel = bool(params.get("per_channel", False))
    qdq = params.get("quant_format", "QDQ") == "QDQ"

    def work() -> None:
        source = _preprocess(spec, out)
        reader = _Reader(spec, source)
        if qdq:
            config = get_qdq_config(
                str(source),
                reader,
                calibrate_method=CalibrationMethod.MinMax,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                per_channel=per_channel,
            )
            quantize(str(source), str(out / "model.onnx"), config)
        else:
            quantize_static(
                str(source),
                str(out / "model.onnx"),
                reader,
                quant_format=QuantFormat.QOperator,
                per_channel=per_channel,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                use_external_data_format=True,
            )
        # The pass's layout: one file (the quantizer wrote external data, as the pass has it do).
        model = onnx.load(str(out / "model.onnx"))
        for written in out.iterdir():
            written.unlink()
        onnx.save_model(model, str(out / "model.onnx"))

    what = "get_qdq_config + quantize" if qdq else "quantize_static (QOperator)"
    return _timed(f"quant_pre_process + {what} + one-file save", work)


def hand_float16(spec: ModelSpec, params: dict[str, Any], out: Path) -> tuple[str, float]:
    import onnx
    from onnxruntime.transformers.onnx_model import OnnxModel

    def work() -> None:
        model = OnnxModel(onnx.load(str(spec.fp32)))
        model.convert_float_to_float16(keep_io_types=bool(params.get("keep_io_types", False)))
        model.topological_sort()
        model.save_model_to_file(str(out / "model.onnx"))

    return _timed("OnnxModel.convert_float_to_float16 + save", work)


def hand_rtn(spec: ModelSpec, params: dict[str, Any], out: Path) -> tuple[str, float]:
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    block = int(params.get("block_size", 128))
    ops = ("MatMul", "Gather")
    axes = (("MatMul", 0), ("Gather", 1))

    def work() -> None:
        algo = DefaultWeightOnlyQuantConfig(
            block_size=block, is_symmetric=True, op_types_to_quantize=ops, quant_axes=axes
        )
        quantizer = MatMulNBitsQuantizer(
            onnx.load(str(spec.fp32)),
            block_size=block,
            is_symmetric=True,
            op_types_to_quantize=ops,
            quant_axes=axes,
            algo_config=algo,
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            quantizer.process()
        quantizer.model.save_model_to_file(str(out / "model.onnx"))

    return _timed("MatMulNBitsQuantizer.process + save", work)


BY_HAND: dict[str, Callable[[ModelSpec, dict[str, Any], Path], tuple[str, float]]] = {
    "OrtTransformersOptimization": hand_transformers_optimization,
    "OnnxDynamicQuantization": hand_dynamic_quantization,
    "OnnxStaticQuantization": hand_static_quantization,
    "OnnxFloatToFloat16": hand_float16,
    "OnnxBlockWiseRtnQuantization": hand_rtn,
}
