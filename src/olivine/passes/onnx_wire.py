"""ONNX files read and written at the protobuf wire level, so that a pass which edits only a graph
around its weights, and the output check, never parse, copy or re-serialize the weights: the fields of a
``ModelProto`` / ``GraphProto`` / ``TensorProto`` located by offset (:func:`_wire_fields`), a one-file model
without its initializers (:class:`GraphWithoutWeights`), and a model whose weights onnxruntime reads in
place from the written file (:func:`weights_in_place`). Used by :mod:`olivine.passes.onnx_io`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from olivine.model.handle import model_tensors

if TYPE_CHECKING:
    import onnx


# Protobuf keys (field number << 3 | wire type 2, length-delimited) of ModelProto.graph and
# GraphProto.initializer (onnx.proto: graph = 7, initializer = 5)...
GRAPH_KEY = bytes([7 << 3 | 2])
INITIALIZER_KEY = bytes([5 << 3 | 2])
# ... and of TensorProto.raw_data (9); a raw_data this big is written as its own chunk.
RAW_DATA_KEY = bytes([9 << 3 | 2])
RAW_CHUNK_BYTES = 1 << 20
#: Initializers this small stay in the model given to onnxruntime (their bytes copied): its shape
#: inference reads the values of shape-like inputs (Unsqueeze axes, Reshape shapes) while it resolves the
#: graph and cannot read them from external data ("Cannot parse data from external tensors").
IN_PLACE_MIN_BYTES = 1024


def varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def copy_fields(source: Any, target: Any, *, skip: str) -> Any:
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


class GraphWithoutWeights:
    """A one-file ONNX model parsed without its graph's initializers, for a pass that edits only the graph
    around them (its inputs, outputs, nodes, metadata): :meth:`save` writes the edited model with the
    initializers copied byte for byte from the source file, so no weight is parsed or serialized.

    The file written is what ``onnx.save_model`` of the whole edited model writes but for the order of
    fields (the graph last in the model, the initializers last in the graph, as
    :func:`olivine.passes.onnx_io.save_single_file` writes them): protobuf fields may come in any order,
    so every parser reads the same ``ModelProto``.
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

        if not path.is_file() or not _one_file_onnx(path):
            return None
        with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
            try:
                parsed = _model_fields(data)
                if parsed is None:
                    return None
                fields, graph_fields = parsed
                spans = [(f[4], f[3] - f[4]) for f in graph_fields if f[0] == 5]
                if not spans or any(f[1] != 2 for f in graph_fields if f[0] == 5):
                    return None
                if any(_external_tensor(data, offset, offset + length) for offset, length in spans):
                    return None
            except _NotWireFormat:
                return None
            light = _outside_graph(data, fields)
            graph_head = b"".join(data[f[4] : f[3]] for f in graph_fields if f[0] != 5)
            light += GRAPH_KEY + varint(len(graph_head)) + graph_head
        proto = onnx.ModelProto()
        proto.ParseFromString(bytes(light))
        if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model_tensors(proto)):
            return None  # a subgraph's or a Constant's tensor in a file beside it: not a one-file model
        return cls(proto, path, _merge_spans(spans))

    def save(self, path: Path) -> None:
        """Write the (edited) model to ``path`` with the source file's initializers."""
        import onnx

        head = copy_fields(self.proto, onnx.ModelProto(), skip="graph").SerializeToString()
        graph_head = self.proto.graph.SerializeToString()
        weights = sum(length for _, length in self.spans)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.source, "rb") as source, open(path, "wb") as out:
            out.write(head + GRAPH_KEY + varint(len(graph_head) + weights) + graph_head)
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
            payload = pos  # the value's first byte
            _, pos = _read_varint(data, pos, end)
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


def _one_file_onnx(path: Path) -> bool:
    return path.suffix.lower() == ".onnx" and path.stat().st_size > 0


Fields = list[tuple[int, int, int, int, int]]


def _model_fields(data: Any) -> tuple[Fields, Fields] | None:
    """The fields of the ``ModelProto`` in ``data`` and those of its graph (see :func:`_graph_fields`),
    or None when it has no graph. Raises :class:`_NotWireFormat` on bytes this reader does not follow."""
    fields = _wire_fields(data, 0, len(data))
    graph_fields = _graph_fields(data, fields)
    return None if graph_fields is None else (fields, graph_fields)


def _outside_graph(data: Any, fields: Fields) -> bytearray:
    """The bytes of every model field but the graph (``ModelProto.graph``, 7), keys included, in order."""
    out = bytearray()
    for number, _, _, field_end, field_start in fields:
        if number != 7:
            out += data[field_start:field_end]
    return out


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


def _default_location(data: Any, field: tuple[int, int, int, int, int]) -> bool:
    """Whether a tensor's ``field`` is ``data_location`` (14) set to DEFAULT (0)."""
    number, wire, payload, field_end, _ = field
    return number == 14 and wire == 0 and _read_varint(data, payload, field_end)[0] == 0


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


def weights_in_place(path: Path) -> bytes | None:
    """The model at ``path`` with each graph initializer's ``raw_data`` replaced by a reference to where
    it lies in that file (``location`` the file's name, ``offset``, ``length``), or None when the file is
    not a one-file ``.onnx`` model whose protobuf framing this follows (then the caller loads the file).

    Every other byte is the file's own: the model's fields, the graph's fields and each initializer's other
    fields (name, shape, type...). A tensor that already refers to external data, has ``segment`` set,
    holds its values in typed fields or has fewer than :data:`IN_PLACE_MIN_BYTES` is passed as written.
    """
    import mmap

    import onnx
    from google.protobuf.message import DecodeError

    if not _one_file_onnx(path):
        return None
    with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        try:
            parsed = _model_fields(data)
            if parsed is None:
                return None
            fields, graph_fields = parsed
            model = _outside_graph(data, fields)
            graph = bytearray()
            for number, wire, payload, field_end, field_start in graph_fields:
                if number != 5 or wire != 2:
                    graph += data[field_start:field_end]
                    continue
                tensor_fields = _wire_fields(data, payload, field_end)
                raw = [f for f in tensor_fields if f[0] == 9]
                # data_location given as DEFAULT (onnx.load of a model with external data writes it on
                # every tensor it read back) says what its absence says; the tensor is EXTERNAL below.
                kept = [f for f in tensor_fields if f[0] != 9 and not _default_location(data, f)]
                if (
                    len(raw) != 1
                    or raw[0][1] != 2
                    or raw[0][3] - raw[0][2] < IN_PLACE_MIN_BYTES
                    or any(f[0] in (3, 13, 14) for f in kept)
                ):
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
                graph += INITIALIZER_KEY + varint(len(serialized)) + serialized
        except (_NotWireFormat, DecodeError):
            return None
    return bytes(model + GRAPH_KEY + varint(len(graph)) + graph)
