"""Each ONNX pass against the same work done by hand with onnxruntime's (or onnx / onnxscript's) tools.

Same process, same model, interleaved rounds (the order alternates each round; an even number of them
counted, so each side is first equally often), medians. Each case runs in a fresh Python process (the
models are built once, before): in one process, the by-hand side of a case took what earlier cases had
left in the heap (MiniLM's float16 I/O conversion by hand: 39-54 ms after the quantization cases, 116-163
ms as the first case), so a case's ratio depended on the cases before it; ``--one-process`` runs them all
in this process, as before. The pass's ``run`` is timed on its own and with
its output check (``check_output``: a lean onnxruntime session that reads the written file's weights in
place; onnx.checker only when onnxruntime refuses), which the
engine adds before it caches a run; "check before" is the check of the first catalogue (onnx.checker +
a default session with optimizations off), timed on the same output; "digests" is the
sha256 record the cache writes when it commits a run (the engine's, not the pass's). Goal: the pass's
run + check <= 1.1x the hand-written calls, as the median over pairs of rounds of the pair's ratio (the
machine's speed changes in phases that move both sides; a ratio of whole-run medians, also printed, can
mix two phases).

    PYTHONPATH=src .venv/bin/python bench/pass_overhead.py [--rounds 3] [--model mlp|minilm]
        [--hidden 1024] [--layers 6] [--only CASE,...] [--one-process] [--work-root DIR] [--no-doc]

Both sides write their files (and onnxruntime its temporary folders) on /dev/shm when it is writable: on
a disk, the page cache's writeback decided the ratios more than the passes did.

The model (``--model``) is a float32 MLP built with onnx.helper (``--layers`` MatMul+Add+Relu blocks of
``--hidden`` units, ~25 MB at the defaults, dynamic batch; calibration: 64 random samples in batches of 8),
or MiniLM exported to ONNX as ``pass_table.py`` does (needs ``examples/minilm/prepare.py``; calibration:
16 example sentences). The float16-I/O cases take the model converted to float16 first.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import load_average, write_doc_block


def build_mlp(folder: Path, hidden: int, layers: int) -> Path:
    rng = np.random.default_rng(0)
    nodes, inits, current = [], [], "input"
    for i in range(layers):
        w = (rng.standard_normal((hidden, hidden)) / np.sqrt(hidden)).astype(np.float32)
        b = (rng.standard_normal(hidden) * 0.1).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes += [
            helper.make_node("MatMul", [current, f"w{i}"], [f"mm{i}"], name=f"matmul{i}"),
            helper.make_node("Add", [f"mm{i}", f"b{i}"], [f"add{i}"], name=f"add{i}"),
        ]
        out = "output" if i == layers - 1 else f"relu{i}"
        nodes.append(helper.make_node("Relu", [f"add{i}"], [out], name=f"relu{i}"))
        current = out
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", hidden])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", hidden])],
        inits,
    )
    folder.mkdir(parents=True)
    path = folder / "model.onnx"
    onnx.save_model(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path)
    )
    return path


class Reader:
    """The calibration data by hand: the same batches the pass's data config gives (``feeds``)."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        from onnxruntime.quantization import CalibrationDataReader

        class _R(CalibrationDataReader):
            def __init__(self) -> None:
                self.batches = iter(feeds)

            def get_next(self) -> dict[str, np.ndarray] | None:
                return next(self.batches, None)

        self.reader = _R()


def by_hand(
    name: str, params: dict[str, Any], source: Path, out: Path, feeds: list[dict[str, np.ndarray]]
) -> None:
    """What a user would write with the libraries to get the same artifact as the pass (same layout: one
    file, as the pass writes by default)."""
    out.mkdir(parents=True, exist_ok=True)
    target = out / "model.onnx"
    if name in (
        "OnnxDynamicQuantization",
        "OnnxQuantization dynamic",
        "OnnxStaticQuantization QDQ",
        "OnnxStaticQuantization QOperator",
    ):
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
        from onnxruntime.quantization.preprocess import quant_pre_process
        from onnxruntime.quantization.quantize import get_qdq_config, quantize

        pre = out / "pre.onnx"
        quant_pre_process(
            str(source), str(pre), auto_merge=True, save_as_external_data=True, all_tensors_to_one_file=True
        )
        if name in ("OnnxDynamicQuantization", "OnnxQuantization dynamic"):
            quantize_dynamic(str(pre), str(target), weight_type=QuantType.QInt8)
        elif name.endswith("QDQ"):
            # get_qdq_config keeps the pre-processed model's external data (the calibration copy and the
            # output are written with it: one file would cost a whole serialization of each).
            config = get_qdq_config(str(pre), Reader(feeds).reader, activation_type=QuantType.QInt8)
            quantize(str(pre), str(target), config)
        else:
            quantize_static(
                str(pre),
                str(target),
                Reader(feeds).reader,
                quant_format=QuantFormat.QOperator,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QUInt8,
                use_external_data_format=True,
            )
        for extra in out.glob("pre.onnx*"):
            extra.unlink()
        if "Static" in name:  # the pass's layout: one file
            model = onnx.load(str(target))
            for written in out.iterdir():
                written.unlink()
            onnx.save_model(model, str(target))
    elif name == "OnnxQuantizationPreprocess":
        from onnxruntime.quantization.preprocess import quant_pre_process

        quant_pre_process(str(source), str(target), auto_merge=True)
    elif name == "OnnxFloatToFloat16":
        from onnxruntime.transformers.onnx_model import OnnxModel

        model = OnnxModel(onnx.load(str(source)))
        model.convert_float_to_float16(keep_io_types=False)
        model.topological_sort()
        onnx.save_model(model.model, str(target))
    elif name in ("OnnxBlockWiseRtnQuantization", "OnnxMatMul4Quantizer"):
        from onnxruntime.quantization.matmul_nbits_quantizer import (
            DefaultWeightOnlyQuantConfig,
            MatMulNBitsQuantizer,
        )

        rtn = name == "OnnxBlockWiseRtnQuantization"
        ops: tuple[str, ...] = ("MatMul", "Gather") if rtn else ("MatMul",)
        axes: tuple[tuple[str, int], ...] = (("MatMul", 0), ("Gather", 1)) if rtn else (("MatMul", 0),)
        block = 128 if rtn else 32
        algo = DefaultWeightOnlyQuantConfig(
            block_size=block, is_symmetric=True, op_types_to_quantize=ops, quant_axes=axes
        )
        quantizer = MatMulNBitsQuantizer(
            onnx.load(str(source)),
            block_size=block,
            is_symmetric=True,
            op_types_to_quantize=ops,
            quant_axes=axes,
            algo_config=algo,
        )
        quantizer.process()
        onnx.save_model(quantizer.model.model, str(target))
    elif name == "OnnxPeepholeOptimizer":
        import onnxoptimizer
        import onnxscript

        model = onnxscript.optimizer.optimize(onnx.load(str(source)))
        onnx.save_model(onnxoptimizer.optimize(model), str(target))
    elif name == "DynamicToFixedShape":
        from onnxruntime.tools.onnx_model_utils import is_fixed_size_tensor, make_dim_param_fixed
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

        model = onnx.load(str(source))
        for param, value in zip(params["dim_param"], params["dim_value"], strict=True):
            make_dim_param_fixed(model.graph, param, value)
        inferred = SymbolicShapeInference.infer_shapes(model, auto_merge=True, guess_output_rank=True)
        for output, candidate in zip(model.graph.output, inferred.graph.output, strict=True):
            if not is_fixed_size_tensor(output) and is_fixed_size_tensor(candidate):
                output.type.tensor_type.shape.CopyFrom(candidate.type.tensor_type.shape)
        onnx.save_model(model, str(target))
    elif name == "GraphSurgeries ReplaceErfWithTanh":
        import onnx_ir as ir
        from onnx_ir.passes.common import ShapeInferencePass
        from onnxscript.rewriter import pattern

        count = iter(range(1 << 30))

        def erf(op: Any, x: Any) -> Any:
            return op.Erf(x)

        def tanh(op: Any, x: Any) -> Any:
            scale = ir.tensor(np.array(605 / 503, dtype=np.float32), name=f"erf_tanh_scale_{next(count)}")
            return op.Tanh(op.Mul(x, op.initializer(scale)))

        def is_float(context: Any, x: Any) -> bool:
            return x.dtype == ir.DataType.FLOAT

        # The surgeon replaces float Erfs only, so it infers types first (its output keeps the shapes).
        model = ShapeInferencePass()(ir.from_proto(onnx.load(str(source)))).model
        pattern.RewriteRuleSet([pattern.RewriteRule(erf, tanh, is_float)]).apply_to_model(model)
        onnx.save_model(ir.to_proto(model), str(target))
    elif name == "GraphSurgeries MatMulAddToGemm":
        import onnx_ir as ir
        from onnx_ir.passes.common import ShapeInferencePass
        from onnxscript.rewriter import pattern

        def target_pattern(op: Any, a: Any, w: Any, b: Any) -> Any:
            return op.Add(op.MatMul(a, w), b)

        def replacement(op: Any, a: Any, w: Any, b: Any) -> Any:
            return op.Gemm(a, w, b)

        model = ShapeInferencePass()(ir.from_proto(onnx.load(str(source)))).model
        pattern.RewriteRuleSet(
            [pattern.RewriteRule(target_pattern, replacement)], commute=True
        ).apply_to_model(model)
        onnx.save_model(ir.to_proto(model), str(target))
    elif name in ("OnnxIODataTypeConverter", "OnnxIOFloat16ToFloat32"):
        import re

        model = onnx.load(str(source))
        graph = model.graph
        outputs = [v for v in graph.output if re.search(params["name_pattern"], v.name)]
        for value in outputs:  # each float16 output the pattern names becomes float32 through a Cast
            for node in graph.node:
                node.output[:] = [f"{o}_fp16" if o == value.name else o for o in node.output]
            graph.node.append(
                helper.make_node("Cast", [f"{value.name}_fp16"], [value.name], to=TensorProto.FLOAT)
            )
            value.type.tensor_type.elem_type = TensorProto.FLOAT
        onnx.save_model(model, str(target))
    elif name == "OrtTransformersOptimization":
        from onnxruntime.transformers.optimizer import optimize_model

        optimized = optimize_model(str(source), model_type="bert", num_heads=0, hidden_size=0)
        optimized.topological_sort()
        onnx.save_model(optimized.model, str(target))
    elif name == "ModelBuilder int4":
        from onnxruntime_genai.models import builder

        with tempfile.TemporaryDirectory() as cache_dir:
            options: dict[str, Any] = {"filename": "model.onnx"}
            where = (str(source), str(source), str(out), "int4", "cpu", cache_dir)
            builder.check_extra_options(*where, options)  # the builder's own pre-check fills options
            builder.create_model(
                model_name=str(source),
                input_path=str(source),
                output_dir=str(out),
                precision="int4",
                execution_provider="cpu",
                cache_dir=cache_dir,
                **options,
            )
    elif name == "AddOliveMetadata":
        model = onnx.load(str(source))
        helper.set_model_props(model, {"owner": "bench"})
        model.graph.name = "bench"
        onnx.save_model(model, str(target))
    else:
        raise ValueError(name)


CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "OnnxDynamicQuantization": ("OnnxDynamicQuantization", {}),
    "OnnxQuantization dynamic": ("OnnxQuantization", {"quant_mode": "dynamic"}),
    "OnnxStaticQuantization QDQ": ("OnnxStaticQuantization", {"data_config": "calib"}),
    "OnnxStaticQuantization QOperator": (
        "OnnxStaticQuantization",
        {
            "data_config": "calib",
            "quant_format": "QOperator",
            "precision": "uint8",
            "activation_type": "uint8",
        },
    ),
    "OnnxQuantizationPreprocess": ("OnnxQuantizationPreprocess", {}),
    "OnnxFloatToFloat16": ("OnnxFloatToFloat16", {}),
    "OnnxBlockWiseRtnQuantization": ("OnnxBlockWiseRtnQuantization", {}),
    "OnnxMatMul4Quantizer": ("OnnxMatMul4Quantizer", {}),
    "OnnxIODataTypeConverter": ("OnnxIODataTypeConverter", {"name_pattern": "output"}),
    "OnnxIOFloat16ToFloat32": ("OnnxIOFloat16ToFloat32", {"name_pattern": "output"}),
    "OrtTransformersOptimization": ("OrtTransformersOptimization", {"model_type": "bert"}),
    "OnnxPeepholeOptimizer": ("OnnxPeepholeOptimizer", {}),
    "DynamicToFixedShape": ("DynamicToFixedShape", {"dim_param": ["batch"], "dim_value": [1]}),
    "GraphSurgeries MatMulAddToGemm": (
        "GraphSurgeries",
        {"surgeries": [{"surgeon": "MatMulAddToGemm"}], "remove_duplicate_initializers": False},
    ),
    "AddOliveMetadata": ("AddOliveMetadata", {"graph_name": "bench", "custom_metadata": {"owner": "bench"}}),
    "ModelBuilder int4": ("ModelBuilder", {"precision": "int4"}),
}


#: MiniLM's cases where its parameters differ (dimension names, outputs; its MatMuls are 3-D, so the
#: surgery there replaces Erf); ModelBuilder takes a causal LM, not this model.
_MINILM_OUTPUTS = {"name_pattern": "last_hidden_state|pooler_output"}
MINILM_CASES: dict[str, tuple[str, dict[str, Any]] | None] = {
    "OnnxIODataTypeConverter": (
        "OnnxIODataTypeConverter",
        {"name_pattern": "last_hidden_state|pooler_output"},
    ),
    "OnnxIOFloat16ToFloat32": ("OnnxIOFloat16ToFloat32", {"name_pattern": "last_hidden_state|pooler_output"}),
    "DynamicToFixedShape": (
        "DynamicToFixedShape",
        {"dim_param": ["batch_size", "sequence_length"], "dim_value": [1, 128]},
    ),
    "GraphSurgeries MatMulAddToGemm": None,
    "GraphSurgeries ReplaceErfWithTanh": (
        "GraphSurgeries",
        {"surgeries": [{"surgeon": "ReplaceErfWithTanh"}], "remove_duplicate_initializers": False},
    ),
    "ModelBuilder int4": None,
}

#: Cases that take the MLP converted to float16 (inputs and outputs too).
FP16_SOURCE = ("OnnxIODataTypeConverter", "OnnxIOFloat16ToFloat32")
#: Cases that take a Hugging Face causal LM folder (random weights, ~10 M parameters, built in code).
HF_SOURCE = ("ModelBuilder int4",)


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def timed_cpu(fn: Callable[[], Any]) -> tuple[float, float]:
    """Wall and CPU seconds (this process, every thread: onnxruntime's too) of ``fn()``."""
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - start, time.process_time() - cpu


def check_before(path: Path) -> None:
    """The output check as it was: onnx.checker by path + a default session with optimizations off
    (ModelBuilder's: onnxruntime-genai loads the folder, without its tokenizer)."""
    import onnxruntime as ort

    if (path.parent / "genai_config.json").is_file():
        import onnxruntime_genai as og

        og.Model(str(path.parent))
        return

    onnx.checker.check_model(str(path))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


SHM = Path("/dev/shm")
#: The by-hand seconds a case's counted rounds should add up to (short cases get more rounds).
MIN_SECONDS = 2.0


def measure(
    case: str,
    cls: Any,
    params: dict[str, Any],
    model: Any,
    ctx: Any,
    source: Path,
    feeds: list[dict[str, np.ndarray]],
    work: Path,
    rounds: int,
) -> dict[str, list[float]]:
    """Interleaved rounds (the order alternates): seconds by hand, of the pass's run, of its output check
    (now and before), of the cache's digests; ``rounds`` at least."""
    from olivine.digests import record_folder

    config = cls.config_class.model_validate(params)
    keys = ("hand", "run", "check", "before", "digests", "hand_cpu", "run_cpu", "check_cpu", "before_cpu")
    times: dict[str, list[float]] = {k: [] for k in keys}
    # Round -1 warms up (imports, caches) and is not counted. A case that takes milliseconds gets more
    # rounds (up to 10x), until its by-hand rounds add up to MIN_SECONDS: its medians steady. The rounds
    # counted are always an even number: the step timed second in a round runs slower here (MiniLM's
    # dynamic quantization by hand twice in a row: the second ~15-30% slower, in CPU seconds too, with a
    # pause between them or not), so each side must come first in as many rounds as the other; with an odd
    # count (5: the by-hand calls first 3 times) the medians put that order effect on the pass.
    r = -2
    while True:
        r += 1
        enough = r >= rounds and (sum(times["hand"]) >= MIN_SECONDS or r >= 10 * rounds)
        if enough and r % 2 == 0:
            break
        out_hand, out_pass = work / f"{case}-hand-{r}", work / f"{case}-pass-{r}"
        out_pass.mkdir()
        instance = cls()
        produced: list[Any] = []

        def hand_step(out: Path = out_hand) -> None:
            by_hand(case, params, source, out, feeds)

        def pass_step(out: Path = out_pass, inst: Any = instance, made: list[Any] = produced) -> None:
            made.append(inst.run(model, config, out, ctx))

        steps = [("hand", hand_step), ("run", pass_step)]
        spent: dict[str, float] = {}
        for key, fn in steps if r % 2 == 0 else reversed(steps):
            spent[key], spent[f"{key}_cpu"] = timed_cpu(fn)
        path = produced[0].onnx_path
        checks = [
            ("check", lambda inst=instance, made=produced: inst.check_output(made[0])),
            ("before", lambda p=path: check_before(p)),
        ]
        for key, fn in checks if r % 2 == 0 else reversed(checks):
            spent[key], spent[f"{key}_cpu"] = timed_cpu(fn)
        spent["digests"] = timed(lambda out=out_pass: record_folder(out))
        if r >= 0:
            for key, seconds in spent.items():
                times[key].append(seconds)
        shutil.rmtree(out_hand)
        shutil.rmtree(out_pass)
    return times


def per_pair(measured: dict[str, list[float]]) -> list[float]:
    """(run + check) / by hand of each pair of rounds (2k: by hand first, 2k + 1: the pass first), the two
    rounds summed: the order effect (see :func:`measure`) cancels within a pair, and a load that changes
    during the run moves these less than the medians of the whole run."""
    hand, run, check = measured["hand"], measured["run"], measured["check"]
    return [
        (run[i] + check[i] + run[i + 1] + check[i + 1]) / (hand[i] + hand[i + 1])
        for i in range(0, len(hand) - 1, 2)
    ]


def write_llm(folder: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from tiny_llm import write_causal_lm

    shape = {"hidden_size": 256, "num_layers": 4, "num_heads": 8, "num_kv_heads": 4, "intermediate_size": 688}
    write_causal_lm(folder, "llama", vocab_size=8000, **shape)


def fp16_copy(source: Path, folder: Path) -> Path:
    from onnxruntime.transformers.onnx_model import OnnxModel

    converted = OnnxModel(onnx.load(str(source)))
    converted.convert_float_to_float16(keep_io_types=False)
    folder.mkdir(parents=True)
    onnx.save_model(converted.model, str(folder / "model.onnx"))
    return folder / "model.onnx"


def mlp_source(work: Path, hidden: int, layers: int) -> tuple[Path, Any, list[dict[str, np.ndarray]], str]:
    """The MLP, its calibration data config (64 random samples in batches of 8) and the same batches."""
    from olivine.config.data import DataConfig

    source = build_mlp(work / "src", hidden, layers)
    data = np.random.default_rng(1).standard_normal((64, hidden)).astype(np.float32)
    np.savez(work / "calib.npz", input=data)
    calib = DataConfig.model_validate(
        {
            "name": "calib",
            "load_dataset_config": {"type": "numpy_dataset", "data_files": str(work / "calib.npz")},
            "dataloader_config": {"batch_size": 8},
        }
    )
    feeds = [{"input": batch} for batch in np.split(data, len(data) // 8)]
    what = (
        f"a {source.stat().st_size / 1e6:.1f} MB float32 MLP ({layers} x {hidden}, dynamic batch; "
        "calibration: 64 random samples in batches of 8)"
    )
    return source, calib, feeds, what


def minilm_source(work: Path) -> tuple[Path, Any, list[dict[str, np.ndarray]], str]:
    """MiniLM exported to fp32 ONNX as ``pass_table.py`` does, with its calibration sentences."""
    import pass_table_models

    spec = pass_table_models.minilm(work / "minilm")
    arrays = dict(np.load(spec.folder / "calib.npz"))
    count = len(next(iter(arrays.values())))
    feeds = [{k: v[i : i + 1] for k, v in arrays.items()} for i in range(count)]
    what = (
        f"all-MiniLM-L6-v2 exported to fp32 ONNX ({spec.fp32.stat().st_size / 1e6:.1f} MB; calibration: "
        f"{count} example sentences, batch 1, sequence 128)"
    )
    return spec.fp32, spec.data_configs["calib"], feeds, what


def prepare(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Build the sources once (the model, its float16 copy, the calibration data and batches) and write
    what a case's process needs to ``work / "prepared.json"``."""
    if args.model == "mlp":
        source, calib, feeds, what = mlp_source(work, args.hidden, args.layers)
    else:
        source, calib, feeds, what = minilm_source(work)
    source16 = fp16_copy(source, work / "src16")
    np.savez(work / "feeds.npz", **{f"{i}/{k}": v for i, feed in enumerate(feeds) for k, v in feed.items()})
    prepared = {
        "model": args.model,
        "what": what,
        "source": str(source),
        "source16": str(source16),
        "hf_source": str(work / "llm"),
        "calib": calib.model_dump(mode="json", exclude_unset=True),
        "feeds": str(work / "feeds.npz"),
        "rounds": args.rounds,
    }
    (work / "prepared.json").write_text(json.dumps(prepared), encoding="utf-8")
    return prepared


def load_feeds(path: str) -> list[dict[str, np.ndarray]]:
    feeds: dict[int, dict[str, np.ndarray]] = {}
    with np.load(path) as arrays:
        for key in arrays.files:
            index, name = key.split("/", 1)
            feeds.setdefault(int(index), {})[name] = arrays[key]
    return [feeds[i] for i in sorted(feeds)]


def run_case(case: str, prepared: dict[str, Any], work: Path) -> dict[str, list[float]]:
    """Every round of one case, in this process."""
    from olivine.config.data import DataConfig
    from olivine.model.handle import ModelHandle
    from olivine.passes import PASSES, PassContext

    cases = all_cases(prepared["model"])
    type_name, params = cases[case]
    cls = PASSES.get(type_name)
    src = Path(prepared["source16"] if case in FP16_SOURCE else prepared["source"])
    model = ModelHandle(kind="onnx", config={"model_path": str(src.parent), "onnx_file_name": src.name})
    if case in HF_SOURCE:
        hf_source = Path(prepared["hf_source"])
        if not hf_source.is_dir():
            write_llm(hf_source)
        src, model = hf_source, ModelHandle(kind="hf", config={"model_path": str(hf_source)})
    ctx = PassContext(data_configs={"calib": DataConfig.model_validate(prepared["calib"])})
    feeds = load_feeds(prepared["feeds"])
    return measure(case, cls, params, model, ctx, src, feeds, work, prepared["rounds"])


def run_case_in_child(case: str, work: Path) -> dict[str, list[float]]:
    """:func:`run_case` in a fresh Python process: no case inherits another's heap, caches or imports."""
    result, log = work / "case.json", work / "case.log"
    command = [sys.executable, __file__, "--child-case", case, "--child-work", str(work)]
    with open(log, "wb") as output:  # the libraries' own logging (per-node lines): shown only on failure
        done = subprocess.run(command, check=False, stdout=output, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        sys.stderr.write(log.read_text(encoding="utf-8", errors="replace")[-4000:])
        raise SystemExit(f"case {case!r} failed in its process (exit {done.returncode})")
    measured: dict[str, list[float]] = json.loads(result.read_text(encoding="utf-8"))
    result.unlink()
    return measured


def all_cases(model: str) -> dict[str, tuple[str, dict[str, Any]]]:
    if model == "mlp":
        return dict(CASES)
    overrides = {**CASES, **MINILM_CASES}
    return {name: case for name, case in overrides.items() if case is not None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", choices=("mlp", "minilm"), default="mlp")
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--only", default="", help="comma-separated case names, run in this order")
    parser.add_argument(
        "--one-process",
        action="store_true",
        help="run every case in this process, one after the other (default: each case in a fresh process)",
    )
    parser.add_argument(
        "--work-root",
        type=Path,
        help="folder for the work files and onnxruntime's temporary files (default: /dev/shm when writable)",
    )
    parser.add_argument("--no-doc", action="store_true", help="print the table, leave BENCHMARKS.md alone")
    parser.add_argument("--child-case", help=argparse.SUPPRESS)
    parser.add_argument("--child-work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    # Every file both sides write (the work folder, onnxruntime's temporary folders) goes to a tmpfs: on
    # this machine's disk the page cache's writeback decided the ratio (MLP dynamic quantization, 30
    # interleaved runs each: 1.007x on /dev/shm, 1.21x on /tmp in the next minute, with the same bytes
    # written by both sides, 82 MB a run).
    root = args.work_root or (SHM if SHM.is_dir() and os.access(SHM, os.W_OK) else None)
    if root is not None:
        tempfile.tempdir = str(root)
    if args.child_case:  # one case, in the process the parent started for it
        prepared = json.loads((args.child_work / "prepared.json").read_text(encoding="utf-8"))
        measured = run_case(args.child_case, prepared, args.child_work)
        (args.child_work / "case.json").write_text(json.dumps(measured), encoding="utf-8")
        return
    work = Path(tempfile.mkdtemp(prefix="olivine-pass-bench-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)  # also when it stops early (a missing model)
    where = f"{root} (tmpfs)" if root == SHM else str(work.parent)
    prepared = prepare(args, work)
    what = prepared["what"]
    cases = all_cases(args.model)
    # --only runs the cases in the order given.
    chosen = [c for c in args.only.split(",") if c in cases] if args.only else list(cases)
    started = time.time()
    load_before = load_average()
    lines = [
        "| pass | by hand (s) | pass run (s) | run / hand | check (s) "
        "| **run + check / hand, per pair of rounds** | same, ratio of the medians | CPU: run + check / hand "
        "| check before (s) | run + check before / hand | digests (s) | rounds |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    isolation = "all cases in one process" if args.one_process else "each case in a fresh process"
    print(f"model: {what}; rounds: {args.rounds}; {isolation}")
    print(f"load averages before: {load_before}  cpus: {os.cpu_count()}")
    print()
    print("\n".join(lines))
    for case in chosen:
        measured = run_case(case, prepared, work) if args.one_process else run_case_in_child(case, work)
        t = {k: statistics.median(v) for k, v in measured.items()}
        h, p = t["hand"], t["run"]
        c, b = t["check"], t["before"]
        paired = statistics.median(per_pair(measured))
        lines.append(
            f"| {case} | {h:.3f} | {p:.3f} | {p / h:.2f}x | {c:.3f} | **{paired:.2f}x** | {(p + c) / h:.2f}x "
            f"| {(t['run_cpu'] + t['check_cpu']) / t['hand_cpu']:.2f}x "
            f"| {b:.3f} | {(p + b) / h:.2f}x | {t['digests']:.3f} | {len(measured['hand'])} |"
        )
        print(lines[-1], flush=True)
    load_after = load_average()
    print()
    print(f"load averages after: {load_after}")
    shutil.rmtree(work)
    if args.no_doc:
        return
    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    command = " ".join(["bench/pass_overhead.py", *sys.argv[1:]])
    intro = [
        "## Pass wall time against the same library calls by hand",
        "",
        "By hand: the same onnxruntime / onnx / onnxscript calls a user would write for the same artifact "
        "and file layout (`by_hand` in `bench/pass_overhead.py`). Pass run: `run` of the pass. Check: its "
        "`check_output`, which the engine runs before the cache commits a run (a lean onnxruntime session "
        "on the written file: optimizations off, one thread, no pre-packing, no arena; a one-file model's "
        "weights are read in place from the written file as external data, after its protobuf framing is "
        "checked; onnx.checker only to name the problem when onnxruntime refuses). Check before: the check "
        "of the first catalogue "
        "(onnx.checker by path + a default session with optimizations off), on the same output. Digests: "
        "the sha256 record the cache writes at commit (the engine's cost, not the pass's). Goal: run + "
        "check <= 1.1x by hand, per pair of rounds: the median over pairs of rounds (one with the by-hand "
        "calls first, one with the pass first) of the pair's summed ratio. The machine runs in phases that "
        "move both sides together (MLP peephole, 20 rounds in one process, CPU ms by hand: 245 234 238 252 "
        "271 247 233 245 130 119 126 130 129 171 212 239 125 126 124 128; the pass's rounds follow the same "
        "steps), so a ratio of the medians of the whole run can take one side's median from one phase and "
        'the other\'s from another (1.14x there, 0.99x per pair); it is kept in the next column. "CPU": '
        "the ratio of the medians in CPU seconds of this process, every thread (the phases show in it too: "
        "they are the CPU's speed, not other work's share of it). The "
        "rounds counted are an even number: the step timed second in a round runs slower here, so each side "
        "is first in half of them. The MLP is weights with almost no graph (the pass's own cost shows most "
        "there); MiniLM is the issue's model.",
        "",
    ]
    header = [
        *(intro if args.model == "mlp" else []),
        f"### {args.model}: {what}",
        "",
        f"Generated by `{command}` ({when}, {time.time() - started:.0f} s). {args.rounds} interleaved "
        f"rounds (the order alternates; a case whose by-hand rounds add up to less than {MIN_SECONDS:.0f} s "
        "gets more, up to 10x), medians; the I/O converters take the model converted to float16 "
        f"(float16 inputs and outputs). Load average {load_before[0]:.2f} before, {load_after[0]:.2f} after, "
        f"{os.cpu_count()} CPUs (shared machine: read the ratios, measured in one run). Files written by "
        f"both sides (work folder, onnxruntime's temporary folders) in {where}; {isolation}.",
        "",
    ]
    block = "pass-overhead" if args.model == "mlp" else f"pass-overhead-{args.model}"
    write_doc_block(block, "\n".join([*header, *lines]))


if __name__ == "__main__":
    main()
