"""A model handle is a frozen value: what kind of model, where its files are, and how to load it.

Handles serialize to Olive's model-config format (``{"type": "ONNXModel", "config": {...}}``) so that an
output ``model_config.json`` is loadable as an ``input_model``. In the cache, paths are stored relative to
the model's folder so an exported cache can be moved and reused (resume).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

ModelKind = Literal["onnx", "pytorch", "hf"]

_TYPE_OF_KIND: dict[str, str] = {"onnx": "ONNXModel", "pytorch": "PyTorchModel", "hf": "HfModel"}
_KIND_OF_TYPE = {v: k for k, v in _TYPE_OF_KIND.items()}
#: Model config keys whose values are local paths (relativized in the cache, content-hashed for ids).
PATH_KEYS = ("model_path", "model_script", "script_dir", "adapter_path")


@dataclass(frozen=True)
class ModelHandle:
    """Args:
    kind: ``onnx``, ``pytorch`` or ``hf``.
    config: the model config keys in Olive's names (``model_path``, ``onnx_file_name``, ``task``,
        ``io_config``, ``model_attributes``, ...) with absolute paths.
    """

    kind: ModelKind
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def type_name(self) -> str:
        return _TYPE_OF_KIND[self.kind]

    @property
    def model_path(self) -> str | None:
        value = self.config.get("model_path")
        return str(value) if value is not None else None

    @property
    def attributes(self) -> dict[str, Any]:
        return dict(self.config.get("model_attributes") or {})

    @property
    def onnx_path(self) -> Path:
        """The ``.onnx`` file of an ONNX model (``model_path`` may be a file or a folder)."""
        if self.kind != "onnx" or self.model_path is None:
            raise ValueError(f"{self.type_name} has no ONNX file")
        path = Path(self.model_path)
        if path.is_dir():
            name = self.config.get("onnx_file_name")
            if name:
                return path / str(name)
            found = sorted(path.glob("*.onnx"))
            if len(found) != 1:
                raise ValueError(f"{path} holds {len(found)} .onnx files; set 'onnx_file_name' to pick one")
            return found[0]
        return path

    def with_config(self, **changes: Any) -> ModelHandle:
        return replace(self, config={**self.config, **changes})

    def to_json(self, *, relative_to: Path | None = None) -> dict[str, Any]:
        """Olive's model-config form; paths under ``relative_to`` become relative (for the cache)."""
        cfg = dict(self.config)
        if relative_to is not None:
            base = relative_to.resolve()
            for key in PATH_KEYS:
                if cfg.get(key) and Path(str(cfg[key])).is_absolute():
                    path = Path(str(cfg[key])).resolve()
                    if path.is_relative_to(base):
                        cfg[key] = os.path.relpath(path, base)
        return {"type": self.type_name, "config": cfg}

    @classmethod
    def from_json(cls, data: dict[str, Any], *, relative_to: Path | None = None) -> ModelHandle:
        kind = _KIND_OF_TYPE[str(data["type"])]
        cfg = dict(data.get("config") or {})
        if relative_to is not None:
            for key in PATH_KEYS:
                if cfg.get(key) and not os.path.isabs(str(cfg[key])):
                    candidate = (relative_to / str(cfg[key])).resolve()
                    # A name that is no path (a model_loader's model_path) stays as it is.
                    if candidate.exists():
                        cfg[key] = str(candidate)
        return cls(kind=kind, config=cfg)  # type: ignore[arg-type]

    def files(self) -> list[Path]:
        """Every file this model's ``model_path`` covers (one file, or all files under a folder)."""
        if self.model_path is None:
            return []
        path = Path(self.model_path)
        if path.is_file():
            if self.kind == "onnx":
                return [path, *external_data_files(path)]
            return [path]
        if path.is_dir():
            return sorted(p for p in path.rglob("*") if p.is_file())
        return []

    def size_on_disk(self) -> int:
        return sum(p.stat().st_size for p in self.files())


#: external_data_files' answers by (path, device, inode, size, mtime): parsing a large model to find them
#: took 0.05-2.8 s, and the size metric and a fidelity script each ask once per candidate.
_EXTERNAL_NAMES: dict[tuple[str, int, int, int, int], frozenset[str]] = {}
_EXTERNAL_NAMES_MAX = 256


def external_data_files(onnx_file: Path) -> list[Path]:
    """The external-data files an ONNX file refers to (they live beside it)."""
    stat = onnx_file.stat()
    key = (str(onnx_file.resolve()), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    names = _EXTERNAL_NAMES.get(key)
    if names is None:
        import onnx

        proto = onnx.load(str(onnx_file), load_external_data=False)
        names = frozenset(
            entry.value
            for tensor in model_tensors(proto)
            for entry in tensor.external_data
            if entry.key == "location"
        )
        if len(_EXTERNAL_NAMES) >= _EXTERNAL_NAMES_MAX:
            _EXTERNAL_NAMES.clear()
        _EXTERNAL_NAMES[key] = names
    found = []
    for name in names:
        # A location is read from the file: one that leads out of the model's folder is not its file.
        relative = os.path.normpath(name)
        if os.path.isabs(relative) or relative == ".." or relative.startswith(".." + os.sep):
            continue
        path = onnx_file.parent / relative
        if path.is_file():
            found.append(path)
    return sorted(found)


def walk_nodes(nodes: Any) -> Iterator[Any]:
    """Each of ``nodes`` (an ``onnx.NodeProto`` sequence: a graph's or a function's) followed by the nodes of
    the subgraphs in its attributes (If / Loop / Scan bodies), depth first."""
    for node in nodes:
        yield node
        for attribute in node.attribute:
            for graph in [attribute.g, *attribute.graphs]:
                yield from walk_nodes(graph.node)


def walk_graphs(graph: Any) -> Iterator[Any]:
    """``graph`` (an ``onnx.GraphProto``) and every subgraph in its nodes' attributes, depth first."""
    yield graph
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("g"):
                yield from walk_graphs(attribute.g)
            for sub in attribute.graphs:
                yield from walk_graphs(sub)


def model_tensors(proto: Any) -> Iterator[Any]:
    """Every tensor of a model that can hold external data: initializers and constant attributes, in the
    main graph, in subgraphs (If / Loop / Scan bodies) and in local functions."""

    def in_nodes(nodes: Any) -> Iterator[Any]:
        for node in nodes:
            for attribute in node.attribute:
                if attribute.HasField("t"):
                    yield attribute.t
                yield from attribute.tensors
                for graph in [attribute.g, *attribute.graphs]:
                    yield from graph.initializer
                    yield from in_nodes(graph.node)

    yield from proto.graph.initializer
    yield from in_nodes(proto.graph.node)
    for function in proto.functions:
        yield from in_nodes(function.node)
