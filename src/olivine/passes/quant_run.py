"""Running onnxruntime's quantizers for the quantization passes: pre-processing, node selection, extra
options, the calibration reader over a data config, and ``quantize_dynamic`` / ``quantize_static``.

The quantizer writes into a temporary folder and the result is published to the output folder with the
pass's external-data parameters (a single file is moved, not re-serialized).
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from olivine.errors import ConfigError, PassRunError
from olivine.model.handle import ModelHandle
from olivine.passes.base import PassContext
from olivine.passes.onnx_io import ExternalDataConfig, onnx_output_handle, publish_onnx_file
from olivine.passes.quant_config import (
    PARAM_EXTRA_OPTIONS,
    QuantizationConfig,
    StaticFieldsConfig,
    static_unrunnable,
)
from olivine.passes.quant_guards import check_scales, kept_in_float
from olivine.passes.quant_overrides import PRECISION_TYPES, for_onnxruntime
from olivine.passes.quant_unshare import unshare_float_constants

#: Models whose files (graph + external data) are below this quantize straight into one file.
_SINGLE_FILE_BYTES = 1 << 30


def quant_type(precision: str) -> Any:
    from onnxruntime.quantization import QuantType

    return QuantType[PRECISION_TYPES[precision]]


def quantize(
    pass_name: str,
    model: ModelHandle,
    cfg: QuantizationConfig,
    output_dir: Path,
    ctx: PassContext,
    *,
    static: bool,
) -> ModelHandle:
    """Quantize ``model`` (dynamic, or static when ``static``) into ``output_dir`` with its file name."""
    import onnx

    if static:
        assert isinstance(cfg, StaticFieldsConfig)
        found = static_unrunnable(cfg, ctx.accelerator)
        if found:
            raise ConfigError(found[1], path=found[0])
    source = model.onnx_path
    with tempfile.TemporaryDirectory(prefix="olivine-quant-") as tmp:
        tmp_dir = Path(tmp)
        # Dynamic quantization of the pre-processed graph reads it where it is (the shared one too: the
        # quantizer's own file-writing first step is skipped, see _quantize_inferred).
        quant_input = source
        if cfg.quant_preprocess:
            quant_input = preprocessed(source, tmp_dir, ctx, copy=static)
        inferred = quant_input != source  # the pre-processed graph: ONNX shape inference already ran
        if not inferred:
            quant_input = _quantizer_view(source, tmp_dir)
        nodes_to_quantize: list[str] | None = None
        nodes_to_exclude: list[str] = []
        if cfg.nodes_to_quantize or cfg.nodes_to_exclude or cfg.op_types_to_exclude:
            # Parsed only when names are needed: a single-file model's graph costs ~0.1 s per 100 MB.
            graph_nodes = onnx.load(str(quant_input), load_external_data=False).graph.node
            nodes_to_quantize, nodes_to_exclude = node_lists(cfg, graph_nodes, ctx)
        output = tmp_dir / "quantized.onnx"
        # Static: the quantizer's models (the calibration copy with every tensor exposed, the output) are
        # written with external data, which costs a raw write instead of serializing every weight
        # (onnxruntime's own get_qdq_config does the same for a pre-processed model); the output is then
        # made one file if the pass's layout asks for it. Dynamic: one file unless the model is near the
        # 2 GB protobuf limit; a single file is moved into place without another load and save.
        external = static or model_bytes(source) >= _SINGLE_FILE_BYTES
        try:
            if static:
                assert isinstance(cfg, StaticFieldsConfig)
                _quantize_static(
                    cfg, model, quant_input, output, nodes_to_quantize, nodes_to_exclude, external, ctx
                )
            else:
                quantize_dynamic = _quantize_inferred if inferred else _quantize_dynamic
                quantize_dynamic(cfg, quant_input, output, nodes_to_quantize, nodes_to_exclude, external, ctx)
        except (ConfigError, PassRunError):
            raise
        except Exception as exc:  # onnxruntime.quantization raises ValueError, AttributeError, ...
            what = "quantize_static" if static else "quantize_dynamic"
            raise PassRunError(pass_name, f"{what} failed on {source}: {exc}") from exc
        proto = publish_onnx_file(output, output_dir / source.name, cfg)
    counts = quantized_op_counts(proto)
    mode = "static" if static else "dynamic"
    ctx.logger.info("%s quantization (%s): %s", mode, cfg.precision, counts or "no quantized operators")
    return onnx_output_handle(model, output_dir, source.name, model.attributes)


def _quantizer_view(source: Path, tmp_dir: Path) -> Path:
    """``source`` as seen from ``tmp_dir``: onnxruntime's quantizers write a shape-inferred copy beside
    their input (``<name>-inferred.onnx``), which must not land in the user's model folder (read-only,
    or shared by two runs). A one-file model is linked; one with external data is copied, data and all
    (onnx refuses external data behind a symbolic or a second hard link)."""
    from olivine.model.handle import external_data_files

    view = tmp_dir / source.name
    data = external_data_files(source)
    if not data:
        try:
            view.symlink_to(source.resolve())
            return view
        except OSError:  # no symbolic links here: a copy
            pass
    for item in (source, *data):
        target = tmp_dir / item.relative_to(source.parent)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(item, target)
    return view


def _quantize_dynamic(
    cfg: QuantizationConfig,
    source: Path,
    output: Path,
    nodes_to_quantize: list[str] | None,
    nodes_to_exclude: list[str],
    external: bool,
    ctx: PassContext,
) -> None:
    from onnxruntime.quantization import quantize_dynamic

    quantize_dynamic(
        model_input=str(source),
        model_output=str(output),
        op_types_to_quantize=cfg.op_types_to_quantize,
        per_channel=cfg.per_channel,
        reduce_range=cfg.reduce_range,
        weight_type=quant_type(cfg.precision),
        nodes_to_quantize=nodes_to_quantize,
        nodes_to_exclude=nodes_to_exclude,
        use_external_data_format=external,
        extra_options=extra_options(cfg, ctx, static=False),
    )


def _quantize_inferred(
    cfg: QuantizationConfig,
    source: Path,
    output: Path,
    nodes_to_quantize: list[str] | None,
    nodes_to_exclude: list[str],
    external: bool,
    ctx: PassContext,
) -> None:
    """``quantize_dynamic`` of a graph that :func:`preprocess` wrote, in fewer steps, same bytes out.

    ``quantize_dynamic`` starts by running ONNX shape inference on its input file into a new file beside
    it and loading that; the pre-processed graph already is the output of ONNX shape inference (the
    last step of onnxruntime's pre-processing), which finds nothing new the second time. So the graph
    is loaded as is (from the shared folder, read-only: no copy either) and the rest is
    ``quantize_dynamic``'s own steps, with its defaults, except that per-channel weights are computed
    for all channels at once (:class:`~olivine.passes.quant_per_channel.VectorizedQuantizer`) and the
    quantizer's shape-inference round trip runs in memory (:mod:`~olivine.passes.quant_infer`). On the
    MiniLM search's 16 dynamic quantizations: 6.9 s of CPU instead of 14.0 s with the vectorised
    weights alone. The output is
    byte-identical to ``quantize_dynamic``'s (``tests/integration/test_shared_preprocess.py`` compares
    them for each option this pass sets, on a transformer graph with attention).
    """
    import onnx
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization.quant_utils import (
        QuantizationMode,
        add_infer_metadata,
        update_opset_version,
    )
    from onnxruntime.quantization.registry import IntegerOpsRegistry

    from olivine.passes.quant_infer import in_memory_shape_inference
    from olivine.passes.quant_per_channel import VectorizedQuantizer

    model = onnx.load(str(source))
    add_infer_metadata(model)  # what quantize_dynamic's loader adds: the quantizer infers nothing again
    options = extra_options(cfg, ctx, static=False)
    options.setdefault("MatMulConstBOnly", True)
    weight_type = quant_type(cfg.precision)
    model = update_opset_version(model, weight_type)
    with in_memory_shape_inference():  # its round trip through two files, in memory (same model)
        quantizer = VectorizedQuantizer(
            model,
            cfg.per_channel,
            cfg.reduce_range,
            QuantizationMode.IntegerOps,
            False,  # static
            weight_type,
            QuantType.QUInt8,  # dynamic activations are uint8
            None,
            nodes_to_quantize or [],
            nodes_to_exclude or [],
            cfg.op_types_to_quantize or list(IntegerOpsRegistry.keys()),
            options,
        )
    quantizer.quantize_model()
    quantizer.model.save_model_to_file(str(output), external)


def _quantize_static(
    cfg: StaticFieldsConfig,
    model: ModelHandle,
    source: Path,
    output: Path,
    nodes_to_quantize: list[str] | None,
    nodes_to_exclude: list[str],
    external: bool,
    ctx: PassContext,
) -> None:
    import numpy as np
    from onnxruntime.quantization.calibrate import CalibrationMethod

    if cfg.quant_format == "QOperator":
        source = unshare_float_constants(source, output.parent, ctx)
    reader = calibration_reader(cfg, model, source, ctx)
    options = extra_options(cfg, ctx, static=True)
    qoperator = cfg.quant_format == "QOperator" and not options.get("ForceQuantizeNoInputCheck")
    nodes_to_exclude = [*nodes_to_exclude, *kept_in_float(source, ctx, qoperator=qoperator)]
    method = CalibrationMethod[cfg.calibrate_method]
    if method is not CalibrationMethod.MinMax and "CalibStridedMinMax" not in options:
        shapes = reader.shapes()
        if len(shapes) > 1:
            # onnxruntime stacks every batch's tensors to build the histograms; batches of different shapes
            # (a short last batch, text padded per batch) cannot be stacked, one batch at a time can.
            options["CalibStridedMinMax"] = 1
            ctx.logger.info(
                "the %d calibration batches come in %d shapes: the %s histograms are built one batch at a "
                "time (onnxruntime's CalibStridedMinMax: 1)",
                len(reader),
                len(shapes),
                cfg.calibrate_method,
            )
    providers = cfg.calibration_providers or ["CPUExecutionProvider"]
    # A range that is not finite (a float -inf of an index computation left in float) makes numpy warn
    # while onnxruntime computes parameters for every calibrated tensor, used or not: check_scales
    # refuses the model if such a parameter (or a NaN from the data) was used. A histogram over float32's
    # whole range overflows first and then fails: that failure is the one line below.
    quantizer = (
        _quantize_qdq_config
        if cfg.quant_format == "QDQ" and cfg.prepare_qdq_config
        else _quantize_static_call
    )
    try:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            quantizer(
                _StaticCall(
                    cfg,
                    source,
                    output,
                    reader,
                    nodes_to_quantize,
                    nodes_to_exclude,
                    external,
                    options,
                    method,
                    providers,
                )
            )
    except ValueError as exc:
        if "Too many bins" not in str(exc):
            raise
        raise PassRunError("OnnxStaticQuantization", _histogram_failure(exc, cfg.calibrate_method)) from exc
    check_scales(output)  # MiniLM QDQ: 17 ms, against ~4 s of quantize_static
    if reader.made_cache:
        from olivine.passes.quant_kv import sync_past_ranges

        synced = sync_past_ranges(output)
        if synced:
            ctx.logger.info(
                "the cache inputs take the ranges of the cache outputs they are fed from (%d tensors): "
                "calibration saw only an empty cache",
                len(synced),
            )


@dataclass(frozen=True)
class _StaticCall:
    """What both of onnxruntime's static entry points take, decided once by :func:`_quantize_static`."""

    cfg: StaticFieldsConfig
    source: Path
    output: Path
    reader: Any
    nodes_to_quantize: list[str] | None
    nodes_to_exclude: list[str]
    external: bool
    options: dict[str, Any]
    method: Any
    providers: list[str]


def _histogram_failure(exc: BaseException, method: str) -> str:
    """Why onnxruntime could not split a calibrated tensor's range into histogram bins, and what to do.

    numpy refuses bins narrower than float32 can tell apart: a range at float32's limits (an attention
    mask filled with float32's minimum) or a tiny one (a near-constant or near-zero tensor). The tensor,
    its minimum and maximum are read from onnxruntime's collector frame when it is on the traceback."""
    seen: tuple[str, float, float] | None = None
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name in ("collect_value", "collect_absolute_value") and "tensor" in frame.f_locals:
            local = frame.f_locals
            try:
                seen = (str(local["tensor"]), float(local["min_value"]), float(local["max_value"]))
            except (KeyError, TypeError, ValueError):
                seen = (str(local["tensor"]), float("nan"), float("nan"))
        tb = tb.tb_next
    what = f"tensor '{seen[0]}' (values {seen[1]:.7g} to {seen[2]:.7g})" if seen else "a calibrated tensor"
    head = f"calibrate_method {method}: onnxruntime cannot split the range of {what} into histogram bins: "
    others = "MinMax" if method == "Percentile" else "MinMax or Percentile"
    huge = (
        "values at float32's limits (an attention mask filled with float32's minimum, as exported "
        "transformers have): replace the mask value first (GraphSurgeries surgeon ReplaceAttentionMaskValue) "
        f"or use calibrate_method {others}"
    )
    tiny = (
        "a range narrower than float32 can split (a near-constant or near-zero tensor): use calibrate_method "
        "MinMax, or leave the node that computes it out (nodes_to_exclude)"
    )
    reach = max(abs(seen[1]), abs(seen[2])) if seen else float("nan")
    if reach >= 1e30:
        return head + huge
    if reach < 1e30:
        return head + tiny
    return f"{head}either {huge}; or {tiny}"


def _quantize_qdq_config(call: _StaticCall) -> None:
    """onnxruntime's full-integer QDQ configuration (Olive's default path): every op type of the model is
    quantizable unless op_types_to_quantize narrows it; the symmetric / range options are parameters."""
    from onnxruntime.quantization.quantize import get_qdq_config
    from onnxruntime.quantization.quantize import quantize as quantize_with_config

    cfg, options = call.cfg, dict(call.options)
    exposed = {param: options.pop(key) for key, (param, _) in PARAM_EXTRA_OPTIONS.items() if key in options}
    qdq = get_qdq_config(
        str(call.source),
        call.reader,
        calibrate_method=call.method,
        activation_type=quant_type(cfg.activation_type),
        weight_type=quant_type(cfg.precision),
        per_channel=cfg.per_channel,
        reduce_range=cfg.reduce_range,
        calibration_providers=call.providers,
        op_types_to_quantize=cfg.op_types_to_quantize,
        nodes_to_exclude=call.nodes_to_exclude,
        extra_options=options or None,
        **exposed,
    )
    qdq.nodes_to_quantize = call.nodes_to_quantize
    qdq.use_external_data_format = call.external
    quantize_with_config(str(call.source), str(call.output), qdq)


def _quantize_static_call(call: _StaticCall) -> None:
    from onnxruntime.quantization import QuantFormat, quantize_static

    cfg = call.cfg
    quantize_static(
        model_input=str(call.source),
        model_output=str(call.output),
        calibration_data_reader=call.reader,
        quant_format=QuantFormat[cfg.quant_format],
        op_types_to_quantize=cfg.op_types_to_quantize,
        per_channel=cfg.per_channel,
        reduce_range=cfg.reduce_range,
        activation_type=quant_type(cfg.activation_type),
        weight_type=quant_type(cfg.precision),
        nodes_to_quantize=call.nodes_to_quantize,
        nodes_to_exclude=call.nodes_to_exclude,
        use_external_data_format=call.external,
        calibrate_method=call.method,
        calibration_providers=call.providers,
        extra_options=call.options,
    )


def calibration_reader(cfg: StaticFieldsConfig, model: ModelHandle, source: Path, ctx: PassContext) -> Any:
    """An onnxruntime ``CalibrationDataReader`` over the batches of the pass's ``data_config``."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader

    from olivine.data import build_dataloader, model_input_names
    from olivine.passes.quant_kv import kv_calibration

    name = cfg.data_config or ""
    if name not in ctx.data_configs:
        known = ", ".join(sorted(ctx.data_configs)) or "none are defined"
        raise ConfigError(f"data config '{name}' is not defined (defined: {known})", path="data_config")
    # The model being quantized (pre-processed: same inputs, weights outside, so its graph parses fast).
    view = ModelHandle(
        kind="onnx", config={**model.config, "model_path": str(source.parent), "onnx_file_name": source.name}
    )
    loader = build_dataloader(
        ctx.data_configs[name],
        model=view,
        tokenizer_path=model.attributes.get("hf_model_path"),
        base_dir=ctx.base_dir,
    )
    wanted = model_input_names(view) or []
    graph = onnx.load(str(source), load_external_data=False).graph
    dtypes = _input_dtypes(graph)
    # A text dataset for a decoder with a KV cache, as in Olive (the genai config is the input model's).
    decoder = kv_calibration(graph, dtypes, model.onnx_path.parent)
    limit = cfg.sampling_size
    made: list[bool] = []  # whether a batch's cache was made here (an empty one)

    def feeds() -> Iterator[dict[str, Any]]:
        seen = 0
        for given, _labels in loader:
            inputs = decoder.complete(given) if decoder is not None else given
            if decoder is not None and decoder.past and decoder.past[0][0] not in given:
                made.append(True)
            missing = [n for n in wanted if n not in inputs]
            if missing:
                raise ConfigError(
                    f"data config '{name}' gives no {missing} (the model's inputs: {wanted})",
                    path="data_config",
                )
            # As evaluation does: float64 data (numpy's default) for a float32 input, int32 ids for int64.
            feed = {n: _as_dtype(inputs[n], dtypes.get(n)) for n in wanted}
            _check_calibration_batch(name, {n: v for n, v in feed.items() if n in given})  # not a made cache
            if limit is not None:
                rows = len(next(iter(feed.values()))) if feed else 0
                if seen + rows > limit:  # a scalar input (total_seq_len) is not per row
                    feed = {k: v[: limit - seen] if v.ndim else v for k, v in feed.items()}
                seen += min(rows, limit - seen)
            yield feed
            if limit is not None and seen >= limit:
                return

    def logged(batches: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        started = last = time.monotonic()
        for count, batch in enumerate(batches, start=1):
            now = time.monotonic()
            if now - last >= _PROGRESS_EVERY_S:
                # A loader that never ends (no calibration_sampling_size) shows here, not as silence.
                last = now
                ctx.logger.info(
                    "calibration: %d batches read from data config '%s' in %.0fs%s",
                    count,
                    name,
                    now - started,
                    "" if limit else " (no calibration_sampling_size: reading until the data ends)",
                )
            yield batch

    class _Reader(CalibrationDataReader):
        """Streams the batches; ``len`` and ``set_range`` (onnxruntime's ``CalibStridedMinMax``) hold them."""

        _held: list[dict[str, Any]] | None
        _window: Iterator[dict[str, Any]] | None

        def __init__(self) -> None:
            self.rewind()

        def get_next(self) -> dict[str, Any] | None:
            return next(self._window if self._window is not None else self._batches, None)

        def __len__(self) -> int:
            return len(self._hold())

        def set_range(self, start_index: int, end_index: int) -> None:
            self._window = iter(self._hold()[start_index:end_index])

        def rewind(self) -> None:
            self._batches = logged(feeds())
            self._held = None
            self._window = None

        def shapes(self) -> set[tuple[tuple[str, tuple[int, ...]], ...]]:
            """The distinct input shapes of the batches (reads them all)."""
            return {tuple(sorted((k, tuple(v.shape)) for k, v in batch.items())) for batch in self._hold()}

        def _hold(self) -> list[dict[str, Any]]:
            if self._held is None:
                self._held = list(self._batches)
                self._batches = iter(self._held)  # get_next still starts from the first batch
            return self._held

        @property
        def made_cache(self) -> bool:
            return bool(made)

    ctx.logger.info("calibrating on data config '%s'%s", name, f" (at most {limit} samples)" if limit else "")
    return _Reader()


#: Seconds between two calibration progress lines.
_PROGRESS_EVERY_S = 30.0


def _input_dtypes(graph: Any) -> dict[str, Any]:
    """The numpy dtype of each of the graph's tensor inputs."""
    import onnx

    dtypes = {}
    for value in graph.input:
        elem_type = value.type.tensor_type.elem_type
        if value.type.HasField("tensor_type") and elem_type:
            try:
                dtypes[value.name] = onnx.helper.tensor_dtype_to_np_dtype(elem_type)
            except KeyError:  # a type numpy has no dtype for (bfloat16, float8): left as given
                continue
    return dtypes


def _as_dtype(value: Any, dtype: Any) -> Any:
    import numpy as np

    array = np.asarray(value)
    if dtype is None or array.dtype == dtype:
        return array
    widen = np.dtype(dtype).kind == "f" and array.dtype.kind in "biuf"  # never floats to integers
    same_kind = array.dtype.kind in "iu" and np.dtype(dtype).kind in "iu"
    return array.astype(dtype) if widen or same_kind else array


def _check_calibration_batch(name: str, feed: dict[str, Any]) -> None:
    """Calibration ranges come from these values: a NaN or an infinity gives infinite scales (a model that
    loads and answers a constant), an empty batch gives no range at all (scale 1.0)."""
    import numpy as np

    for key, value in feed.items():
        array = np.asarray(value)
        if array.size == 0:
            raise ConfigError(
                f"data config '{name}' gives an empty batch for input '{key}' (shape {list(array.shape)})",
                path="data_config",
            )
        if array.dtype.kind in "fc" and not np.isfinite(array).all():
            raise ConfigError(
                f"data config '{name}' gives NaN or infinite values for input '{key}': calibration would "
                "compute infinite scales",
                path="data_config",
            )


def model_bytes(onnx_file: Path) -> int:
    """The bytes of an ONNX model folder: the graph file and every file beside it (its external data)."""
    return sum(p.stat().st_size for p in onnx_file.parent.iterdir() if p.is_file())


#: The shared step (:class:`~olivine.passes.base.SharedSteps`) of the pre-processed graph.
PREPROCESS_STEP = "quant_preprocess"


def shared_steps(cfg: Any) -> tuple[str, ...]:
    """The shared steps a quantization run with ``cfg`` uses (``Pass.shared_steps``)."""
    return (PREPROCESS_STEP,) if getattr(cfg, "quant_preprocess", False) else ()


#: The pre-processing a quantization pass runs (``quant_preprocess``): Olive's call, every step on.
_PREPROCESS_PARAMS = {
    "skip_optimization": False,
    "skip_onnx_shape": False,
    "skip_symbolic_shape": False,
    "auto_merge": True,
}


def preprocessed(source: Path, tmp_dir: Path, ctx: PassContext, *, copy: bool = True) -> Path:
    """The model to quantize when ``quant_preprocess`` is on: ``source`` pre-processed, in ``tmp_dir``.

    In the engine the pre-processed graph is made once per input model and shared by every quantization
    run from it (:attr:`PassContext.shared`); with ``copy`` each run gets its own copy because
    onnxruntime's quantizers write a shape-inferred file beside their input (and onnx refuses external
    data with several hard links); without, the shared file itself (read it only). On failure the
    original model is quantized instead (``source`` is returned), with a warning, as :func:`preprocess`
    does.
    """
    if ctx.shared is None:
        return preprocess(source, tmp_dir, ctx)

    def make(folder: Path) -> Path:
        ctx.logger.info("quantization pre-processing (once for every quantization of this input model)")
        return preprocess(source, folder, ctx, fail_ok=False)

    try:
        shared = ctx.shared.get_or_make(PREPROCESS_STEP, _PREPROCESS_PARAMS, make)
    except Exception as exc:  # symbolic shape inference fails on some graphs; quantizing still works
        ctx.logger.warning("quantization pre-processing failed (%s); quantizing the model as is", _why(exc))
        return source
    ctx.logger.debug("quantizing the pre-processed graph shared by every quantization of this input model")
    if not copy:
        return shared
    for item in shared.parent.iterdir():
        if item.is_file() and item.name != "shared.json":
            shutil.copyfile(item, tmp_dir / item.name)
    return tmp_dir / shared.name


def preprocess(
    source: Path,
    tmp_dir: Path,
    ctx: PassContext,
    *,
    skip_optimization: bool = False,
    skip_onnx_shape: bool = False,
    skip_symbolic_shape: bool = False,
    fail_ok: bool = True,
    target: Path | None = None,
    external: ExternalDataConfig | None = None,
) -> Path:
    """onnxruntime's quantization pre-processing: symbolic shape inference, optimization, ONNX shapes.

    Writes ``target`` (default: ``tmp_dir/preprocessed.onnx`` with its weights outside, for a quantizer
    to read); ``external`` gives a final output's external-data parameters instead (a single file unless
    they ask for external data or the model is too big for one).

    On failure the original model is quantized instead, with a warning (Olive does the same), unless
    ``fail_ok`` is false (the ``OnnxQuantizationPreprocess`` pass), when the error propagates.
    """
    from onnxruntime.quantization.preprocess import quant_pre_process

    _quiet_preprocess_traceback()
    target = target or tmp_dir / "preprocessed.onnx"
    layout: dict[str, Any] = {"save_as_external_data": True, "all_tensors_to_one_file": True}
    if external is not None:
        layout = {
            "save_as_external_data": external.save_as_external_data
            or model_bytes(source) >= _SINGLE_FILE_BYTES,
            "all_tensors_to_one_file": external.all_tensors_to_one_file,
            "external_data_location": external.external_data_name or f"{target.name}.data",
            "external_data_size_threshold": external.size_threshold,
        }
    try:
        quant_pre_process(
            input_model=str(source),
            output_model_path=str(target),
            skip_optimization=skip_optimization,
            skip_onnx_shape=skip_onnx_shape,
            skip_symbolic_shape=skip_symbolic_shape,
            auto_merge=True,
            **layout,
        )
    except Exception as exc:  # symbolic shape inference fails on some graphs; quantizing still works
        if not fail_ok:
            raise
        ctx.logger.warning("quantization pre-processing failed (%s); quantizing the model as is", _why(exc))
        return source
    return target


def _why(exc: BaseException) -> str:
    """An exception as one line; a bare ``assert`` in onnxruntime's shape inference has no message."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else f"{type(exc).__name__} without a message"


def node_lists(cfg: QuantizationConfig, nodes: Any, ctx: PassContext) -> tuple[list[str] | None, list[str]]:
    """``nodes_to_quantize`` and ``nodes_to_exclude`` as names in the graph being quantized.

    Pre-processing renames the nodes it fuses (``fc1/MatMul`` -> ``fc1/MatMul/MatMulAddFusion``), so a name
    from the input model also selects the nodes derived from it, including the halves of a split Gemm.
    Excluded op types become node names: the quantizer itself has no op-type exclusion.
    """
    ops = {n.name: n.op_type for n in nodes}
    unknown: list[str] = []

    def resolve(given: list[str]) -> list[str]:
        out: list[str] = []
        for name in given:
            # A node still called by its name is that node alone (``fc1`` is not ``fc1/inner``, another
            # layer); a name pre-processing replaced selects what was derived from it.
            matches = [name] if name in ops else [n for n in ops if n.startswith(f"{name}/")]
            if not matches:
                unknown.append(name)
            out += matches or [name]
            # Dynamic quantization splits a Gemm into "<name>_MatMul" + "<name>_Add" before it selects nodes.
            out += [f"{m}{suffix}" for m in matches if ops[m] == "Gemm" for suffix in ("_MatMul", "_Add")]
        return out

    to_quantize = resolve(cfg.nodes_to_quantize) if cfg.nodes_to_quantize else None
    to_exclude = resolve(cfg.nodes_to_exclude or [])
    if unknown:
        ctx.logger.warning("node names not in the model (ignored): %s", ", ".join(unknown))
    if cfg.op_types_to_exclude:
        to_exclude += [n.name for n in nodes if n.op_type in cfg.op_types_to_exclude]
    return to_quantize, to_exclude


def extra_options(cfg: QuantizationConfig, ctx: PassContext, *, static: bool) -> dict[str, Any]:
    """``extra_options`` with the keys set from their parameters (symmetry; range and overrides if static).

    The pass parameter wins over the same key written in ``extra_options``, default or not, with a warning
    when they differ: Olive does so, and an Olive config must give the same model here.
    """
    options = dict(cfg.extra_options or {})
    for key, (param, in_dynamic) in PARAM_EXTRA_OPTIONS.items():
        if not (static or in_dynamic):
            continue
        value = getattr(cfg, param, None)
        if value is None:
            continue
        if key in options and options[key] != value:
            ctx.logger.warning(
                "extra_options.%s is overridden by the pass parameter %s=%s", key, param, value
            )
        options[key] = value
    if isinstance(options.get("TensorQuantOverrides"), dict):
        activations = str(getattr(cfg, "activation_type", "uint8"))  # dynamic: onnxruntime's uint8
        options["TensorQuantOverrides"] = for_onnxruntime(options["TensorQuantOverrides"], activations)
    known = onnxruntime_extra_options()
    for key in sorted(set(cfg.extra_options or {}) - set(known)) if known else []:
        close = difflib.get_close_matches(key, known, n=1)
        ctx.logger.warning(
            "extra_options.%s is not an option onnxruntime's quantizer reads: it has no effect%s",
            key,
            f" (did you mean '{close[0]}'?)" if close else "",
        )
    return options


@functools.lru_cache(maxsize=1)
def onnxruntime_extra_options() -> tuple[str, ...]:
    """The ``extra_options`` keys onnxruntime's quantizer reads: those its entry points document, and
    those its modules look up by name (empty if its source cannot be read)."""
    import inspect
    import re

    from onnxruntime import quantization
    from onnxruntime.quantization import quantize_dynamic, quantize_static

    doc = (quantize_static.__doc__ or "") + (quantize_dynamic.__doc__ or "")
    keys = set(re.findall(r"^\s+([A-Za-z][\w.]+)\s*=", doc, re.M))
    folder = Path(inspect.getfile(quantization)).parent
    pattern = re.compile(r"extra_options(?:\.get\(|\[)[\"']([A-Z][\w.]+)[\"']")
    for source in folder.glob("*.py"):
        with contextlib.suppress(OSError, UnicodeDecodeError):
            keys.update(pattern.findall(source.read_text()))
    return tuple(sorted(keys))


def quantized_op_counts(proto: Any) -> dict[str, int]:
    """How many quantized operators (integer ops, Q/DQ, QLinear* and quantized contrib ops) a graph has."""
    counts: dict[str, int] = {}
    for node in proto.graph.node:
        op = node.op_type
        if (
            "Integer" in op
            or op.startswith("QLinear")
            or op in ("DynamicQuantizeLinear", "QuantizeLinear", "DequantizeLinear", "QAttention")
            or op in ("QEmbedLayerNormalization", "QGemm")
        ):
            counts[op] = counts.get(op, 0) + 1
    return counts


class _NoTraceback(logging.Filter):
    """onnxruntime's pre-processing logs a whole traceback at ERROR when its optimization step fails, then
    goes on without it: the one-line message before it says what happened."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Traceback (most recent call last)")


def _quiet_preprocess_traceback() -> None:
    target = logging.getLogger("onnxruntime.quantization.shape_inference")
    if not any(isinstance(f, _NoTraceback) for f in target.filters):
        target.addFilter(_NoTraceback())
