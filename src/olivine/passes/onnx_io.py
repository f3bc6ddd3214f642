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
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import field_validator

from olivine.errors import ConfigError, PassRunError
from olivine.model.handle import ModelHandle, ModelKind
from olivine.passes.base import Pass, PassConfig

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
    size_threshold: int = 1024
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
    onnx.save_model(
        proto,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=config.all_tensors_to_one_file,
        location=location,
        size_threshold=config.size_threshold,
        convert_attribute=config.convert_attribute,
    )


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
    tensors = [*graph.initializer, *_attribute_tensors(graph.node)]
    tensors += [t for f in proto.functions for t in _attribute_tensors(f.node)]
    if path.suffix.lower() != ".onnx" or not graph.initializer or any(uses_external_data(t) for t in tensors):
        onnx.save_model(proto, str(path))
        return
    head = _copy_fields(proto, onnx.ModelProto(), skip="graph").SerializeToString()
    graph_head = _copy_fields(graph, onnx.GraphProto(), skip="initializer").SerializeToString()
    chunks: list[bytes] = []
    for tensor in graph.initializer:
        parts = _tensor_parts(tensor)
        chunks += [_INITIALIZER_KEY + _varint(sum(map(len, parts))), *parts]
    graph_bytes = len(graph_head) + sum(map(len, chunks))
    with open(path, "wb") as out:
        out.write(head)
        out.write(_GRAPH_KEY + _varint(graph_bytes))
        out.write(graph_head)
        for chunk in chunks:
            out.write(chunk)


def _tensor_parts(tensor: onnx.TensorProto) -> list[bytes]:
    """A tensor's serialization as chunks to write one after another. A big ``raw_data`` is its own chunk
    (the bytes as Python reads them, key and length written here): upb serializes one big field several
    times slower than Python copies it out (a 47 MB embedding: ~70 ms against ~5 ms)."""
    import onnx

    if not tensor.HasField("raw_data") or _tensor_bytes(tensor) < _RAW_CHUNK_BYTES:
        return [tensor.SerializeToString()]
    rest = _copy_fields(tensor, onnx.TensorProto(), skip="raw_data").SerializeToString()
    raw = tensor.raw_data
    return [rest, _RAW_DATA_KEY + _varint(len(raw)), raw]


# Protobuf keys (field number << 3 | wire type 2, length-delimited) of ModelProto.graph and
# GraphProto.initializer (onnx.proto: graph = 7, initializer = 5)...
_GRAPH_KEY = bytes([7 << 3 | 2])
_INITIALIZER_KEY = bytes([5 << 3 | 2])
# ... and of TensorProto.raw_data (9); a raw_data this big is written as its own chunk.
_RAW_DATA_KEY = bytes([9 << 3 | 2])
_RAW_CHUNK_BYTES = 1 << 20


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _copy_fields(source: Any, target: Any, *, skip: str) -> Any:
    """``target`` with every field of ``source`` set in it except ``skip`` (which is not copied at all)."""
    for field, value in source.ListFields():
        if field.name == skip:
            continue
        if field.is_repeated:
            getattr(target, field.name).extend(value)
        elif field.type == field.TYPE_MESSAGE:
            getattr(target, field.name).CopyFrom(value)
        else:
            setattr(target, field.name, value)
    return target


def _attribute_tensors(nodes: Any) -> Iterator[onnx.TensorProto]:
    """The tensors in the attributes of ``nodes`` and of their subgraphs (initializers included)."""
    for node in nodes:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            for graph in [attribute.g, *attribute.graphs]:
                yield from graph.initializer
                yield from _attribute_tensors(graph.node)


def publish_onnx_file(written: Path, path: Path, config: ExternalDataConfig) -> onnx.ModelProto:
    """Give the model a library wrote to ``written`` its final place ``path``; returns the model for its
    graph's structure (nodes, inputs, outputs: its initializers may be left out).

    A single-file model that may stay single-file is moved as is: loading and re-serializing ~100 MB
    costs about half a second and changes nothing; its weights are not even parsed
    (:class:`GraphWithoutWeights`). Otherwise its external data is read into the proto already parsed and
    it is saved with :func:`save_onnx_model` (the file is parsed once either way).
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


class GraphWithoutWeights:
    """A one-file ONNX model parsed without its graph's initializers, for a pass that edits only the graph
    around them (its inputs, outputs, nodes, metadata): :meth:`save` writes the edited model with the
    initializers copied byte for byte from the source file, so no weight is parsed or serialized.

    The file written is what ``onnx.save_model`` of the whole edited model writes but for the order of
    fields (the graph last in the model, the initializers last in the graph, as :func:`save_single_file`
    writes them): protobuf fields may come in any order, so every parser reads the same ``ModelProto``.
    """

    def __init__(self, proto: onnx.ModelProto, source: Path, spans: list[tuple[int, int]]) -> None:
        #: The model with every field but its graph's initializers (edit it in place).
        self.proto = proto
        self.source = source
        #: (offset, length) of the source file's initializer fields, keys and lengths included.
        self.spans = spans

    @classmethod
    def load(cls, path: Path) -> GraphWithoutWeights | None:
        """The model at ``path`` without its initializers, or None when it is not a plain one-file model
        (another suffix, external data, a graph field given more than once, or bytes this reader does not
        follow): the caller then loads the whole model."""
        import mmap

        import onnx

        if path.suffix.lower() != ".onnx" or not path.is_file() or path.stat().st_size == 0:
            return None
        with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
            try:
                fields = _wire_fields(data, 0, len(data))
                graph_fields = _graph_fields(data, fields)
                if graph_fields is None:
                    return None
                spans = [(f[4], f[3] - f[4]) for f in graph_fields if f[0] == 5]
                if not spans or any(f[1] != 2 for f in graph_fields if f[0] == 5):
                    return None
                if any(_external_tensor(data, offset, offset + length) for offset, length in spans):
                    return None
            except _NotWireFormat:
                return None
            light = bytearray()
            for number, _, _, field_end, field_start in fields:
                if number != 7:
                    light += data[field_start:field_end]
            graph_head = b"".join(data[f[4] : f[3]] for f in graph_fields if f[0] != 5)
            light += _GRAPH_KEY + _varint(len(graph_head)) + graph_head
        proto = onnx.ModelProto()
        proto.ParseFromString(bytes(light))
        return cls(proto, path, _merge_spans(spans))

    def save(self, path: Path) -> None:
        """Write the (edited) model to ``path`` with the source file's initializers."""
        import onnx

        head = _copy_fields(self.proto, onnx.ModelProto(), skip="graph").SerializeToString()
        graph_head = self.proto.graph.SerializeToString()
        weights = sum(length for _, length in self.spans)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.source, "rb") as source, open(path, "wb") as out:
            out.write(head + _GRAPH_KEY + _varint(len(graph_head) + weights) + graph_head)
            out.flush()
            for offset, length in self.spans:
                _copy_range(source, out, offset, length)


class _NotWireFormat(Exception):
    pass


def _read_varint(data: Any, pos: int, end: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= end or shift > 63:
            raise _NotWireFormat
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _wire_fields(data: Any, pos: int, end: int) -> list[tuple[int, int, int, int, int]]:
    """The fields of the protobuf message in ``data[pos:end]``: (number, wire type, payload start, field
    end, field start) each."""
    fields = []
    while pos < end:
        field_start = pos
        key, pos = _read_varint(data, pos, end)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _read_varint(data, pos, end)
            payload = pos
        elif wire == 1:
            payload, pos = pos, pos + 8
        elif wire == 2:
            length, payload = _read_varint(data, pos, end)
            pos = payload + length
        elif wire == 5:
            payload, pos = pos, pos + 4
        else:  # groups (3, 4) are not in onnx.proto
            raise _NotWireFormat
        if pos > end or number == 0:
            raise _NotWireFormat
        fields.append((number, wire, payload, pos, field_start))
    return fields


def _graph_fields(data: Any, fields: list[tuple[int, int, int, int, int]]) -> list[Any] | None:
    """The fields of the model's graph (``ModelProto.graph``, 7), or None if it has none. A graph given
    more than once (a file with fields appended, as :mod:`~olivine.passes.add_metadata` writes) is one
    graph whose fields are those of every occurrence in order: protobuf parses a message field that occurs
    twice as the merge of both, which is the parse of their concatenation."""
    graphs = [f for f in fields if f[0] == 7]
    if not graphs or any(f[1] != 2 for f in graphs):
        return None
    return [field for _, _, start, end, _ in graphs for field in _wire_fields(data, start, end)]


def _external_tensor(data: Any, start: int, end: int) -> bool:
    """Whether the initializer field at ``data[start:end]`` (key and length included) refers to external
    data (TensorProto.external_data = 13 or data_location = 14 set to EXTERNAL)."""
    _, pos = _read_varint(data, start, end)
    _, pos = _read_varint(data, pos, end)
    for number, wire, payload, _, _ in _wire_fields(data, pos, end):
        if number == 13:
            return True
        if number == 14 and wire == 0 and _read_varint(data, payload, end)[0] != 0:
            return True
    return False


def _merge_spans(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for offset, length in spans:
        if merged and merged[-1][0] + merged[-1][1] == offset:
            merged[-1] = (merged[-1][0], merged[-1][1] + length)
        else:
            merged.append((offset, length))
    return merged


def _copy_range(source: Any, out: Any, offset: int, length: int) -> None:
    """Copy ``length`` bytes of ``source`` from ``offset`` to the end of ``out`` (in the kernel if it can)."""
    import os

    while length > 0:
        try:
            copied = os.copy_file_range(source.fileno(), out.fileno(), length, offset)
        except (AttributeError, OSError):
            copied = 0
        if copied <= 0:  # no copy_file_range (or not between these files): through Python
            source.seek(offset)
            out.seek(0, os.SEEK_END)
            while length > 0:
                chunk = source.read(min(length, 1 << 24))
                if not chunk:
                    raise OSError(f"{source.name} ended while its initializers were copied")
                out.write(chunk)
                offset, length = offset + len(chunk), length - len(chunk)
            out.flush()
            return
        offset, length = offset + copied, length - copied


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

    A one-file model is loaded through :func:`_weights_in_place`: every byte of the file but the
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
    in_place = _weights_in_place(path)
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


def _weights_in_place(path: Path) -> bytes | None:
    """The model at ``path`` with each graph initializer's ``raw_data`` replaced by a reference to where
    it lies in that file (``location`` the file's name, ``offset``, ``length``), or None when the file is
    not a one-file ``.onnx`` model whose protobuf framing this follows (then the caller loads the file).

    Every other byte is the file's own: the model's fields, the graph's fields and each initializer's other
    fields (name, shape, type...). A tensor that already refers to external data, has ``segment`` set or
    holds its values in typed fields is passed as written.
    """
    import mmap

    import onnx
    from google.protobuf.message import DecodeError

    if path.suffix.lower() != ".onnx" or path.stat().st_size == 0:
        return None
    with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        try:
            fields = _wire_fields(data, 0, len(data))
            graph_fields = _graph_fields(data, fields)
            if graph_fields is None:
                return None
            model = bytearray()
            for number, _, _, field_end, field_start in fields:
                if number != 7:
                    model += data[field_start:field_end]
            graph = bytearray()
            for number, wire, payload, field_end, field_start in graph_fields:
                if number != 5 or wire != 2:
                    graph += data[field_start:field_end]
                    continue
                tensor_fields = _wire_fields(data, payload, field_end)
                raw = [f for f in tensor_fields if f[0] == 9]
                kept = [f for f in tensor_fields if f[0] != 9]
                if len(raw) != 1 or raw[0][1] != 2 or any(f[0] in (3, 13, 14) for f in kept):
                    graph += data[field_start:field_end]
                    continue
                tensor = onnx.TensorProto()
                tensor.ParseFromString(b"".join(data[f[4] : f[3]] for f in kept))
                tensor.data_location = onnx.TensorProto.EXTERNAL
                where = {
                    "location": path.name,
                    "offset": str(raw[0][2]),
                    "length": str(raw[0][3] - raw[0][2]),
                }
                for key, value in where.items():
                    tensor.external_data.add(key=key, value=value)
                serialized = tensor.SerializeToString()
                graph += _INITIALIZER_KEY + _varint(len(serialized)) + serialized
        except (_NotWireFormat, DecodeError):
            return None
    return bytes(model + _GRAPH_KEY + _varint(len(graph)) + graph)


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
