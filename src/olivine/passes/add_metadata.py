"""``AddOliveMetadata``: name the graph and write metadata properties into the ONNX file.

Olive's parameters (olive/passes/onnx/add_metadata.py): ``graph_name`` (required), ``custom_metadata``
(string key/values), ``add_optimization_info`` (the model's HF task, optimization passes and
quantization config from its attributes). Olive also writes ``olive_version``; this pass writes
``olivine_version``. ``model_hash`` is, as in Olive, the identity of the pass's input model: here its id in
Olivine's cache (the input model's content hash, or the key of the run that made it), "unknown" when the
pass runs outside the engine. ``hf_model_name`` is written only when it is a hub name, never a local path. The
weights are not re-serialized: the new fields are appended to a copy of the model file (see
:func:`_copy_with_fields`) and external-data files are copied beside it (Olive hard-links them, but
onnx >= 1.18 refuses hard-linked external data as a possible attack), each at its place relative to the
model file. ``save_as_external_data`` (with the other external-data keys) writes the model again in that
layout.
"""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path
from typing import Any, ClassVar

from pydantic import field_validator

from olivine.model.handle import ModelHandle, external_data_files
from olivine.passes.base import PassConfig, PassContext
from olivine.passes.onnx_io import ExternalDataConfig, OnnxPass, onnx_output_handle, save_onnx_model


class AddOliveMetadataConfig(ExternalDataConfig):
    graph_name: str
    custom_metadata: dict[str, Any] = {}
    add_optimization_info: bool = True

    @field_validator("graph_name")
    @classmethod
    def _named(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("graph_name must not be empty")
        return value


class AddOliveMetadata(OnnxPass):
    name: ClassVar[str] = "AddOliveMetadata"
    version: ClassVar[str] = "2"
    config_class: ClassVar[type[PassConfig]] = AddOliveMetadataConfig
    #: Its output records the olivine version.
    libraries: ClassVar[tuple[str, ...]] = ("onnx", "onnxruntime", "olivine")

    def run(self, model: ModelHandle, config: Any, output_dir: Path, ctx: PassContext) -> ModelHandle:
        import onnx

        cfg: AddOliveMetadataConfig = config
        source = model.onnx_path
        target = output_dir / source.name
        proto = onnx.load(str(source), load_external_data=False)
        existing = {p.key: p.value for p in proto.metadata_props}
        metadata = {**existing, **olive_metadata(model, cfg, ctx.model_id)}
        output_dir.mkdir(parents=True, exist_ok=True)
        if cfg.save_as_external_data:  # a new weights layout asked for: the model is written again
            whole = onnx.load(str(source), load_external_data=True)
            onnx.helper.set_model_props(whole, metadata)
            whole.graph.name = cfg.graph_name
            save_onnx_model(whole, target, cfg)
            ctx.logger.info("graph '%s', metadata keys: %s", cfg.graph_name, ", ".join(sorted(metadata)))
            return onnx_output_handle(model, output_dir, source.name, model.attributes)
        for data_file in external_data_files(source):  # each at its place relative to the model file
            target_file = output_dir / data_file.relative_to(source.parent)
            target_file.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(data_file, target_file)
        added = {k: v for k, v in metadata.items() if k not in existing}
        if all(existing[k] == metadata[k] for k in existing):
            _copy_with_fields(source, target, added, cfg.graph_name)
        else:  # a key changes value: the whole model is written again
            onnx.helper.set_model_props(proto, metadata)
            proto.graph.name = cfg.graph_name
            onnx.save_model(proto, str(target))
        ctx.logger.info("graph '%s', metadata keys: %s", cfg.graph_name, ", ".join(sorted(metadata)))
        return onnx_output_handle(model, output_dir, source.name, model.attributes)


def _copy_with_fields(source: Path, target: Path, added: dict[str, str], graph_name: str) -> None:
    """Copy the model file and append the new metadata entries and the graph name to it.

    Protocol buffers parse a message field that occurs twice by merging the occurrences (a repeated field
    is extended, a scalar one takes the last value), so ``copy + ModelProto(metadata_props=added,
    graph=GraphProto(name=graph_name))`` is the model with those fields set: what ``load``, set and
    ``save`` give, for the price of a file copy instead of re-serializing every weight (~5x faster).
    """
    import onnx

    patch = onnx.ModelProto()
    patch.graph.name = graph_name
    for key, value in added.items():
        patch.metadata_props.add(key=key, value=value)
    shutil.copyfile(source, target)
    with open(target, "ab") as out:
        out.write(patch.SerializeToString())


@functools.cache
def _olivine_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("olivine")
    except PackageNotFoundError:
        return "unknown"


def olive_metadata(model: ModelHandle, cfg: AddOliveMetadataConfig, model_id: str | None) -> dict[str, str]:
    metadata = {str(k): str(v) for k, v in cfg.custom_metadata.items()}
    metadata["olivine_version"] = _olivine_version()
    metadata["model_hash"] = model_id or "unknown"  # Olive sets it after the custom keys too
    attributes = model.attributes
    hf_name = attributes.get("_name_or_path")
    if isinstance(hf_name, str) and hf_name and not os.path.isabs(hf_name) and not os.path.exists(hf_name):
        metadata["hf_model_name"] = hf_name
    if cfg.add_optimization_info:
        passes = attributes.get("optimization_passes")
        if passes is not None:
            metadata["optimization_passes"] = (
                ", ".join(map(str, passes)) if isinstance(passes, list) else str(passes)
            )
        for key in ("hf_task", "quantization_config"):
            if key in attributes:
                metadata[key] = str(attributes[key])
    return metadata
