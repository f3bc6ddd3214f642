"""Each ONNX pass against the same work done by hand with onnxruntime's (or onnx / onnxscript's) tools.

Same process, same model, interleaved rounds (the order alternates each round), medians. The pass's
``run`` is timed on its own and with its output check (``check_output``: onnx.checker by path + a lean
onnxruntime session), which the engine adds before it caches a run; "check before" is the check as it was
(onnx.checker + a default session with optimizations off), timed on the same output; "digests" is the
sha256 record the cache writes when it commits a run (the engine's, not the pass's). Goal: the pass's
run + check <= 1.1x the hand-written calls.

    PYTHONPATH=src .venv/bin/python bench/pass_overhead.py [--rounds 3] [--hidden 1024] [--layers 6]

The model is a float32 MLP built with onnx.helper (the float16-I/O cases take it converted to float16
first) (``--layers`` MatMul+Add+Relu blocks of ``--hidden``
units, ~25 MB at the defaults) with a dynamic batch; calibration uses 64 random samples in batches of 8.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
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
    """The calibration data by hand: batches of 8 from the same arrays the data config reads."""

    def __init__(self, data: np.ndarray) -> None:
        from onnxruntime.quantization import CalibrationDataReader

        class _R(CalibrationDataReader):
            def __init__(self) -> None:
                self.batches = iter(np.split(data, len(data) // 8))

            def get_next(self) -> dict[str, np.ndarray] | None:
                batch = next(self.batches, None)
                return None if batch is None else {"input": batch}

        self.reader = _R()


def by_hand(name: str, source: Path, out: Path, data: np.ndarray) -> None:
    """What a user would write with the libraries to get the same artifact as the pass."""
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
            config = get_qdq_config(str(pre), Reader(data).reader, activation_type=QuantType.QInt8)
            quantize(str(pre), str(target), config)
        else:
            quantize_static(
                str(pre),
                str(target),
                Reader(data).reader,
                quant_format=QuantFormat.QOperator,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QUInt8,
            )
        for extra in out.glob("pre.onnx*"):
            extra.unlink()
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
        from onnxruntime.tools.onnx_model_utils import make_dim_param_fixed
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

        model = onnx.load(str(source))
        make_dim_param_fixed(model.graph, "batch", 1)
        inferred = SymbolicShapeInference.infer_shapes(model, auto_merge=True, guess_output_rank=True)
        model.graph.output[0].type.tensor_type.shape.CopyFrom(inferred.graph.output[0].type.tensor_type.shape)
        onnx.save_model(model, str(target))
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
        model = onnx.load(str(source))
        graph = model.graph
        for value in graph.output:  # the float16 "output" becomes float32 through a Cast
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


#: Cases that take the MLP converted to float16 (inputs and outputs too).
FP16_SOURCE = ("OnnxIODataTypeConverter", "OnnxIOFloat16ToFloat32")
#: Cases that take a Hugging Face causal LM folder (random weights, ~10 M parameters, built in code).
HF_SOURCE = ("ModelBuilder int4",)


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


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


def measure(
    case: str,
    cls: Any,
    config: Any,
    model: Any,
    ctx: Any,
    source: Path,
    data: np.ndarray,
    work: Path,
    rounds: int,
) -> dict[str, list[float]]:
    """Interleaved rounds (the order alternates): seconds by hand, of the pass's run, of its output check
    (now and before), of the cache's digests."""
    from olivine.digests import record_folder

    times: dict[str, list[float]] = {k: [] for k in ("hand", "run", "check", "before", "digests")}
    for r in range(-1, rounds):  # round -1 warms up (imports, caches) and is not counted
        out_hand, out_pass = work / f"{case}-hand-{r}", work / f"{case}-pass-{r}"
        out_pass.mkdir()
        instance = cls()
        produced: list[Any] = []

        def hand_step(out: Path = out_hand) -> None:
            by_hand(case, source, out, data)

        def pass_step(out: Path = out_pass, inst: Any = instance, made: list[Any] = produced) -> None:
            made.append(inst.run(model, config, out, ctx))

        steps = [("hand", hand_step), ("run", pass_step)]
        spent: dict[str, float] = {}
        for key, fn in steps if r % 2 == 0 else reversed(steps):
            spent[key] = timed(fn)
        path = produced[0].onnx_path
        checks = [
            ("check", lambda inst=instance, made=produced: inst.check_output(made[0])),
            ("before", lambda p=path: check_before(p)),
        ]
        for key, fn in checks if r % 2 == 0 else reversed(checks):
            spent[key] = timed(fn)
        spent["digests"] = timed(lambda out=out_pass: record_folder(out))
        if r >= 0:
            for key, seconds in spent.items():
                times[key].append(seconds)
        shutil.rmtree(out_hand)
        shutil.rmtree(out_pass)
    return times


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--only", default="", help="comma-separated case names")
    parser.add_argument("--no-doc", action="store_true", help="print the table, leave BENCHMARKS.md alone")
    args = parser.parse_args()

    from olivine.config.data import DataConfig
    from olivine.model.handle import ModelHandle
    from olivine.passes import PASSES, PassContext

    work = Path(tempfile.mkdtemp(prefix="olivine-pass-bench-"))
    source = build_mlp(work / "src", args.hidden, args.layers)
    source16 = fp16_copy(source, work / "src16")
    hf_source = work / "llm"
    data = np.random.default_rng(1).standard_normal((64, args.hidden)).astype(np.float32)
    np.savez(work / "calib.npz", input=data)
    calib = DataConfig.model_validate(
        {
            "name": "calib",
            "load_dataset_config": {"type": "numpy_dataset", "data_files": str(work / "calib.npz")},
            "dataloader_config": {"batch_size": 8},
        }
    )
    ctx = PassContext(data_configs={"calib": calib})
    cases = [c for c in CASES if not args.only or c in args.only.split(",")]
    size_mb = source.stat().st_size / 1e6
    started = time.time()
    load_before = load_average()
    lines = [
        "| pass | by hand (s) | pass run (s) | run / hand | check (s) | **run + check / hand** "
        "| check before (s) | run + check before / hand | digests (s) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    print(f"model: {size_mb:.1f} MB MLP ({args.layers} x {args.hidden}); rounds: {args.rounds}")
    print(f"load averages before: {load_before}  cpus: {os.cpu_count()}")
    print()
    print("\n".join(lines))
    for case in cases:
        type_name, params = CASES[case]
        cls = PASSES.get(type_name)
        config = cls.config_class.model_validate(params)
        src = source16 if case in FP16_SOURCE else source
        model = ModelHandle(
            kind="onnx", config={"model_path": str(src.parent), "onnx_file_name": "model.onnx"}
        )
        if case in HF_SOURCE:
            if not hf_source.is_dir():
                write_llm(hf_source)
            src, model = hf_source, ModelHandle(kind="hf", config={"model_path": str(hf_source)})
        t = {
            k: statistics.median(v)
            for k, v in measure(case, cls, config, model, ctx, src, data, work, args.rounds).items()
        }
        h, p = t["hand"], t["run"]
        c, b = t["check"], t["before"]
        lines.append(
            f"| {case} | {h:.3f} | {p:.3f} | {p / h:.2f}x | {c:.3f} | **{(p + c) / h:.2f}x** "
            f"| {b:.3f} | {(p + b) / h:.2f}x | {t['digests']:.3f} |"
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
    header = [
        "## Pass wall time against the same library calls by hand",
        "",
        f"Generated by `{command}` ({when}, {time.time() - started:.0f} s). Model: a {size_mb:.1f} MB "
        f"float32 MLP ({args.layers} x {args.hidden}, dynamic batch; the I/O converters take it converted "
        f"to float16); {args.rounds} interleaved rounds (the order alternates), medians. Load average "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after, {os.cpu_count()} CPUs (shared machine: "
        "read the ratios, measured in one run).",
        "",
        "By hand: the same onnxruntime / onnx / onnxscript calls a user would write for the same artifact "
        "(`by_hand` in the script). Pass run: `run` of the pass. Check: its `check_output`, which the "
        "engine runs before the cache commits a run (a lean onnxruntime session: optimizations off, one "
        "thread, no pre-packing, no arena; onnx.checker only to name the problem when onnxruntime "
        "refuses). Check before: the check this session replaced (onnx.checker by path + a default "
        "session with optimizations off). Digests: the sha256 record the cache writes at commit (the "
        "engine's cost, not the pass's; sha256 at ~0.5 GB/s here).",
        "",
    ]
    write_doc_block("pass-overhead", "\n".join([*header, *lines]))


if __name__ == "__main__":
    main()
