"""What every ONNX pass shares: Olive's external-data parameters, writing a model, its output handle, and
the default output check.

A pass module imports this one, never a sibling pass. :class:`OnnxPass` is the base of the passes that
take an ONNX model: its :meth:`~OnnxPass.check_output` creates a lean onnxruntime session from the
written file (and, when that fails, runs ``onnx.checker`` on it by path to name the problem). The engine
calls it before the cache commits a run, so a model a pass wrote broken is a failure, never a cached
success.
"""

from __future__ import annotations

import functools
import math
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import Field, field_validator

from olivine.errors import ConfigError, PassRunError
from olivine.model.handle import ModelHandle, ModelKind, model_tensors
from olivine.output_names import OUTPUT_FILE_NAMES
from olivine.passes.base import Pass, PassConfig
from olivine.passes.onnx_wire import (
    GRAPH_KEY,
    INITIALIZER_KEY,
    RAW_CHUNK_BYTES,
    RAW_DATA_KEY,
    GraphWithoutWeights,
    copy_fields,
    varint,
    weights_in_place,
)

if TYPE_CHECKING:
    import onnx

ONNX_FILE_NAME = "model.onnx"
# protobuf cannot serialize a message of 2 GiB or more; such models must keep their weights outside.
_MAX_PROTOBUF_BYTES = 2**31 - 1


class ExternalDataConfig(PassConfig):
    """Olive's external-data parameters, shared by every pass that writes an ONNX model."""

    save_as_external_data: bool = False
    all_tensors_to_one_file: bool = True
    external_data_name: str | None = None
    size_threshold: Annotated[int, Field(ge=0)] = 1024  # bytes; onnx's own default
    convert_attribute: bool = False

    @field_validator("external_data_name")
    @classmethod
    def _plain_data_name(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not value or "/" in value or "\\" in value or value in (".", ".."):
            raise ValueError(
                f"external_data_name must be a plain file name written beside the model, got {value!r}"
            )
        if any(ord(c) < 32 or ord(c) == 127 for c in value) or len(value.encode()) > 255:
            # onnx's writer stops at a NUL (the file and the name in the graph would differ).
            raise ValueError(
                f"external_data_name must be a file name of printable characters, at most 255 bytes, "
                f"got {value!r}"
            )
        if value in OUTPUT_FILE_NAMES:
            # With output_dir naming a model file, the data file lands beside Olivine's own records.
            raise ValueError(
                f"external_data_name {value!r} is the name of a file Olivine writes in the output folder; "
                "use another name, e.g. 'model.onnx.data'"
            )
        if value.lower().endswith(".onnx"):
            # The graph file is <name>.onnx: the weights would overwrite it (or be taken for a second model).
            raise ValueError(
                f"external_data_name {value!r} ends in '.onnx', the name of the model's graph file; "
                "use another suffix, e.g. 'model.onnx.data'"
            )
        return value


def save_onnx_model(proto: onnx.ModelProto, path: Path, config: ExternalDataConfig) -> None:
    """Write ``proto`` to ``path``; weights go to external data when asked or when the model is >= 2 GB."""
    import onnx
    from onnx.external_data_helper import (
        convert_model_to_external_data,
        set_external_data,
        uses_external_data,
    )

    external = config.save_as_external_data or _needs_external_data(proto)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not external:
        save_single_file(proto, path)
        return
    location = config.external_data_name or f"{path.name}.data"
    if location == path.name:
        raise ConfigError(
            f"'{location}' is the model's own file name; the weights would replace its graph",
            path="external_data_name",
        )
    if config.all_tensors_to_one_file:  # onnx appends to a file already there (a stale one: remove it)
        (path.parent / location).unlink(missing_ok=True)
    # onnx's own conversion checks the location against the working directory, not the model's folder
    # (a 'model.onnx.data' where the command runs failed every save): the tensors are marked here.
    convert_model_to_external_data(
        proto,
        all_tensors_to_one_file=False,
        size_threshold=config.size_threshold,
        convert_attribute=config.convert_attribute,
    )
    if config.all_tensors_to_one_file:
        for tensor in model_tensors(proto):
            if uses_external_data(tensor) and tensor.HasField("raw_data"):
                set_external_data(tensor, location)
    onnx.save_model(proto, str(path))


def save_single_file(proto: onnx.ModelProto, path: Path) -> None:
    """Write ``proto`` to ``path`` as one protobuf file: what ``onnx.save_model(proto, path)`` writes, in
    about half its time on a model of 25 MB or more (MiniLM, 91 MB: 195 -> 103 ms CPU, the write included).

    protobuf (upb) serializes a big message much more slowly than its parts, and the more so the bigger it
    is: a 25 MB MLP takes 15-25 ms as one message and 2-3 ms as its initializers one by one (13 MB: about
    the same either way). So the model is written as its parts: the model without its graph, then the graph
    field (tag and length written here) holding the graph without its initializers followed by each
    initializer's own serialization. Protobuf fields may come in any order and a message is the
    concatenation of its fields, so every parser (onnx, onnxruntime) reads the same ``ModelProto``; only
    the order of fields in the file differs (the graph after the model's other fields, the initializers
    after the graph's other fields). A model onnx.save_model would also write external data for (tensors
    that point at external data but hold their bytes), a text format, or one without initializers is
    saved by ``onnx.save_model`` itself.
    """
    import onnx
    from onnx.external_data_helper import uses_external_data

    graph = proto.graph
    tensors = list(model_tensors(proto))
    if path.suffix.lower() != ".onnx" or not graph.initializer or any(uses_external_data(t) for t in tensors):
        onnx.save_model(proto, str(path))
        return
    head = copy_fields(proto, onnx.ModelProto(), skip="graph").SerializeToString()
    graph_head = copy_fields(graph, onnx.GraphProto(), skip="initializer").SerializeToString()
    chunks: list[bytes] = []
    for tensor in graph.initializer:
        parts = _tensor_parts(tensor)
        chunks += [INITIALIZER_KEY + varint(sum(map(len, parts))), *parts]
    graph_bytes = len(graph_head) + sum(map(len, chunks))
    with open(path, "wb") as out:
        out.write(head)
        out.write(GRAPH_KEY + varint(graph_bytes))
        out.write(graph_head)
        for chunk in chunks:
            out.write(chunk)


def _tensor_parts(tensor: onnx.TensorProto) -> list[bytes]:
    """A tensor's serialization as chunks to write one after another. A big ``raw_data`` is its own chunk
    (the bytes as Python reads them, key and length written here): upb serializes one big field several
    times slower than Python copies it out (a 47 MB embedding: ~70 ms against ~5 ms)."""
    import onnx

    if not tensor.HasField("raw_data") or _tensor_bytes(tensor) < RAW_CHUNK_BYTES:
        return [tensor.SerializeToString()]
    rest = copy_fields(tensor, onnx.TensorProto(), skip="raw_data").SerializeToString()
    raw = tensor.raw_data
    return [rest, RAW_DATA_KEY + varint(len(raw)), raw]


def publish_onnx_file(written: Path, path: Path, config: ExternalDataConfig) -> onnx.ModelProto:
    """Give the model a library wrote to ``written`` its final place ``path``; returns the model for its
    graph's structure (nodes, inputs, outputs: its initializers may be left out).

    A single-file model that may stay single-file is moved as is: loading and re-serializing ~100 MB
    costs about half a second and changes nothing; its weights are not even parsed
    (:class:`~olivine.passes.onnx_wire.GraphWithoutWeights`). Otherwise its external data is read into
    the proto already parsed and it is saved with :func:`save_onnx_model` (the file is parsed once
    either way).
    """
    import onnx
    from onnx.external_data_helper import load_external_data_for_model

    path.parent.mkdir(parents=True, exist_ok=True)
    if not config.save_as_external_data and written.stat().st_size < _MAX_PROTOBUF_BYTES:
        light = GraphWithoutWeights.load(written)
        if light is not None:  # one file, no external data
            shutil.move(written, path)
            return light.proto
    proto = onnx.load(str(written), load_external_data=False)
    stays_single = (
        not config.save_as_external_data
        and not _has_external_data(proto)
        and written.stat().st_size < _MAX_PROTOBUF_BYTES
    )
    if stays_single:
        shutil.move(written, path)
        return proto
    load_external_data_for_model(proto, str(written.parent))
    save_onnx_model(proto, path, config)
    return proto


def load_onnx(path: Path) -> onnx.ModelProto:
    """The whole model at ``path``, external data included (the passes that rewrite a graph need it all)."""
    import onnx

    return onnx.load(str(path), load_external_data=True)


def _needs_external_data(
    proto: onnx.ModelProto, limit: int = _MAX_PROTOBUF_BYTES, margin: int = 256 << 20
) -> bool:
    """Whether ``proto`` is too big for one protobuf file (``limit``: 2 GiB).

    ``ByteSize()`` serializes the whole model to count it (~0.2 s per 100 MB), so it is asked only when
    the tensors' own bytes (initializers and constant attributes, nearly all of a model) come within
    ``margin`` of the limit.
    """
    tensor_bytes = sum(_tensor_bytes(t) for t in proto.graph.initializer)
    for node in proto.graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                tensor_bytes += _tensor_bytes(attr.t)
    if tensor_bytes < limit - margin:
        return False
    size = proto.ByteSize()
    return size <= 0 or size >= limit


def _tensor_bytes(tensor: onnx.TensorProto) -> int:
    """The bytes a tensor's data takes (raw or typed fields; 8 bytes per typed element is an upper bound).

    Raw data is counted from the shape and element type: reading ``raw_data`` from Python copies it
    (~1 ms per 25 MB). Its length is the element count times the element size for every type that
    onnx stores raw (sub-byte types are counted a byte per element: an upper bound)."""
    typed = len(tensor.float_data) + len(tensor.int32_data) + len(tensor.int64_data) + len(tensor.double_data)
    raw = 0
    if tensor.HasField("raw_data"):
        raw = math.prod(tensor.dims) * _element_bytes(tensor.data_type)
    return raw + 8 * typed + sum(len(v) for v in tensor.string_data)


@functools.cache
def _element_bytes(data_type: int) -> int:
    from onnx import helper

    try:
        return max(1, int(helper.tensor_dtype_to_np_dtype(data_type).itemsize))
    except (KeyError, TypeError, ValueError):  # an unknown type: at most 16 bytes an element (complex128)
        return 16


def _has_external_data(proto: onnx.ModelProto) -> bool:
    from onnx.external_data_helper import uses_external_data

    return any(uses_external_data(t) for t in proto.graph.initializer)


def onnx_output_handle(
    source: ModelHandle, output_dir: Path, file_name: str, attributes: dict[str, Any]
) -> ModelHandle:
    """The handle of an ONNX model written to ``output_dir/file_name``; inference settings carry over, and
    so do the files of an onnxruntime-genai model folder (see :func:`carry_genai_files`)."""
    if source.kind == "onnx":
        carry_genai_files(source, output_dir)
    config: dict[str, Any] = {"model_path": str(output_dir), "onnx_file_name": file_name}
    if source.kind == "onnx" and source.config.get("inference_settings"):
        config["inference_settings"] = source.config["inference_settings"]
    if attributes:
        config["model_attributes"] = attributes
    return ModelHandle(kind="onnx", config=config)


GENAI_CONFIG = "genai_config.json"
#: Files a genai folder may hold that are not carried: ONNX graphs and their external data, and framework
#: weights (a metadata_only folder can keep the HF checkpoint beside the graph).
_NOT_CARRIED = (".onnx", ".data", ".onnx_data", ".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ckpt")


def carry_genai_files(source: ModelHandle, output_dir: Path) -> None:
    """Copy the files an onnxruntime-genai folder keeps beside its graph (``genai_config.json``, tokenizer,
    HF config, adapters...) from ``source``'s folder into ``output_dir``, so a pass after ``ModelBuilder``
    still writes a folder the generator loads (Olive carries them as ``additional_files``). Files the pass
    wrote itself win; ONNX graphs, their external data and framework weights never come along; a folder
    without a genai config is left alone."""
    if source.model_path is None:
        return
    path = Path(str(source.model_path))
    folder = path if path.is_dir() else path.parent
    if not (folder / GENAI_CONFIG).is_file():
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    for file in sorted(folder.iterdir()):
        if not file.is_file() or file.name.startswith(".") or file.name.lower().endswith(_NOT_CARRIED):
            continue
        target = output_dir / file.name
        if not target.exists():
            shutil.copyfile(file, target)


def write_output(
    proto: onnx.ModelProto, model: ModelHandle, output_dir: Path, config: ExternalDataConfig
) -> ModelHandle:
    """Save ``proto`` under ``output_dir`` with the input model's file name (attributes carry over)."""
    name = model.onnx_path.name
    save_onnx_model(proto, output_dir / name, config)
    return onnx_output_handle(model, output_dir, name, model.attributes)


def check_onnx_file(path: Path) -> None:
    """Raise ``ValueError`` naming what is wrong if ``path`` is not a model onnxruntime can load.

    One validation, in onnxruntime, the model's consumer: a CPU session parses the model, reads every
    tensor, resolves the graph against the operator schemas (types, attributes, single assignment) and
    finds a kernel for every node. ``onnx.checker`` alone would refuse good models: the operators
    onnxruntime registers in the ONNX domain (``SimplifiedLayerNormalization`` in every onnxruntime-genai
    model) are unknown to it. The session is as cheap as that allows: graph optimizations off (the
    evaluator optimizes anyway), one thread (no thread pool to start), no weight pre-packing and no memory
    arena.

    A one-file model is loaded through :func:`weights_in_place`: every byte of the file but the
    initializers' ``raw_data`` goes to onnxruntime as the model, and each ``raw_data`` stays where it is
    in the written file, read by onnxruntime as the tensor's external data (offset and length in that
    file: onnxruntime maps it, checks its length against the tensor's shape and type). The protobuf
    framing of the file down to each initializer's fields is checked on the way, so this is the written
    file loading, without the three copies of every weight (read, parse, unpack) a session from the path
    makes: MiniLM fp32, 91 MB, 184 -> 22 ms here. Any other file (or one whose framing this does not
    follow, or one onnxruntime refuses that way) is loaded from its path, as the issue asks, and when
    onnxruntime refuses it ``onnx.checker`` (given the path, so models over 2 GB work) says whether it is
    not even valid ONNX, which names the problem better.
    """
    import onnxruntime as ort

    if not path.is_file():
        raise ValueError(f"the pass wrote no model file at {path}")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = False
    options.enable_mem_pattern = False
    options.add_session_config_entry("session.disable_prepacking", "1")
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    in_place = weights_in_place(path)
    if in_place is not None:
        options.add_session_config_entry(
            "session.model_external_initializers_file_folder_path", str(path.parent)
        )
        try:
            ort.InferenceSession(in_place, options, providers=["CPUExecutionProvider"])
            return
        except Exception:  # the file itself decides, below, and its error names the problem
            pass
        options = _without_folder(options)
    try:
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail / InvalidGraph / NotImplemented types
        _raise_if_not_onnx(path)
        raise ValueError(f"onnxruntime cannot load {path.name}: {_first_line(exc)}") from exc


def _without_folder(options: Any) -> Any:
    """Lean session options like ``options`` without the external-data folder entry (a fresh copy)."""
    import onnxruntime as ort

    fresh = ort.SessionOptions()
    for name in (
        "graph_optimization_level",
        "log_severity_level",
        "intra_op_num_threads",
        "inter_op_num_threads",
        "enable_cpu_mem_arena",
        "enable_mem_pattern",
    ):
        setattr(fresh, name, getattr(options, name))
    fresh.add_session_config_entry("session.disable_prepacking", "1")
    fresh.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return fresh


def _raise_if_not_onnx(path: Path) -> None:
    import onnx

    try:
        onnx.checker.check_model(str(path))
    except Exception as exc:  # ValidationError, DecodeError, OSError for missing external data
        raise ValueError(f"onnx.checker rejects {path.name}: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class OnnxPass(Pass):
    """Base of the passes that take an ONNX model and write one; checks the written model."""

    accepts: ClassVar[tuple[ModelKind, ...]] = ("onnx",)
    libraries: ClassVar[tuple[str, ...]] = ("onnx", "onnxruntime")

    def check_output(self, output: ModelHandle) -> None:
        try:
            check_onnx_file(output.onnx_path)
        except ValueError as exc:
            raise PassRunError(self.name, f"its output is not a usable model: {exc}") from exc
