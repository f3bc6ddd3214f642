"""Model identities: an input model's id is a hash of its config with every local file replaced by the
hash of its content, so editing the weights (or the loader script) changes the id; a pass output's id is
the key of the run that made it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from olivine.engine.keys import hash_json, hash_tree
from olivine.model.handle import PATH_KEYS, ModelHandle


def input_model_id(model: ModelHandle) -> str:
    described: dict[str, Any] = {"type": model.type_name}
    for key, value in sorted(model.config.items()):
        if key in PATH_KEYS and value and Path(str(value)).exists():
            described[key] = {"sha256": hash_tree(Path(str(value)))}
        else:
            described[key] = value
    path = Path(str(model.model_path)) if model.model_path else None
    if model.kind == "onnx" and path is not None and path.is_file():
        # An ONNX file's weights may live in files beside it: editing them is editing the model.
        try:
            external = [f for f in model.files() if f != path]
        except Exception:  # not parseable as ONNX: loading it fails later, with its own message
            external = []
        if external:
            described["external_data"] = {
                f.relative_to(path.parent).as_posix(): hash_tree(f) for f in external
            }
    return hash_json(described)


def handle_from_input_config(config: Any) -> ModelHandle:
    """A handle from the validated ``input_model`` config (paths already absolute)."""
    data = config.model_dump(mode="json", exclude_none=True)
    type_name = data.pop("type")
    return ModelHandle.from_json({"type": type_name, "config": data})
