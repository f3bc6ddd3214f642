"""Data configs (Olive's ``data_configs``): validation, dataloaders, post-processing, local files.

Containers: ``DataContainer`` (components from a ``user_script``), ``DummyDataContainer``,
``TransformersDummyDataContainer``, ``TransformersPromptDummyDataContainer``, ``HuggingfaceContainer`` (local
csv / json / parquet files only) and ``RawDataContainer``. Olivine adds one component of its own,
``numpy_dataset``: arrays from local ``.npz`` / ``.npy`` files::

    {"name": "arrays", "type": "DataContainer",
     "load_dataset_config": {"type": "numpy_dataset", "data_files": "data/eval.npz",
                             "input_names": ["input"], "label_name": "label"},
     "dataloader_config": {"batch_size": 8}}

See :mod:`olivine.data.params` for every built-in component's parameters.
"""

from typing import TYPE_CHECKING, Any

from olivine.data.components import validate_data_config
from olivine.data.paths import content_fingerprint, local_paths, rewrite_paths

if TYPE_CHECKING:
    from olivine.data.loader import Batch, DataLoader
    from olivine.data.pipeline import build_dataloader, model_input_names, post_processor

#: Imported on first use: they need numpy, which validating a config (``olivine run``) does not.
_LAZY = {
    "Batch": "olivine.data.loader",
    "DataLoader": "olivine.data.loader",
    "build_dataloader": "olivine.data.pipeline",
    "model_input_names": "olivine.data.pipeline",
    "post_processor": "olivine.data.pipeline",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'olivine.data' has no attribute '{name}'")


__all__ = [
    "Batch",
    "DataLoader",
    "build_dataloader",
    "content_fingerprint",
    "local_paths",
    "model_input_names",
    "post_processor",
    "rewrite_paths",
    "validate_data_config",
]
