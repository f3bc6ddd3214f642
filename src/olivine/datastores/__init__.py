"""Datastores: where a workflow submitted to a host exports its cache, outputs, logs and status.

A datastore is an fsspec URL (``file://`` or a plain path; ``az://``/``s3://`` with their extras). An
export lives at ``<datastore>/<yyyy-mm-dd-hh-mm-ss>/<workflow_id>/`` (UTC submission time) and holds
``cache/``, ``output/``, ``logs/``, ``status.json`` and, once complete, ``manifest.json``.

Importing this package needs only fsspec; cloud SDKs load when their backend is opened.
"""

from __future__ import annotations

from olivine.datastores.assets import Asset, list_assets, register, show
from olivine.datastores.base import BACKENDS, Datastore
from olivine.datastores.exporter import Exporter, TreeExport
from olivine.datastores.files import FileEntry
from olivine.datastores.layout import (
    ExportLayout,
    claim_export,
    latest_export,
    list_exports,
    parse_timestamp_folder,
    timestamp_folder,
)
from olivine.datastores.logs import log_streams, read_log
from olivine.datastores.manifest import Problem, build_manifest, fetch, read_manifest, verify
from olivine.datastores.paths import default_datastore_dir, olivine_home, user_config_dir, user_data_dir

__all__ = [
    "BACKENDS",
    "Asset",
    "Datastore",
    "ExportLayout",
    "Exporter",
    "FileEntry",
    "Problem",
    "TreeExport",
    "build_manifest",
    "claim_export",
    "default_datastore_dir",
    "fetch",
    "latest_export",
    "list_assets",
    "list_exports",
    "log_streams",
    "olivine_home",
    "parse_timestamp_folder",
    "read_log",
    "read_manifest",
    "register",
    "show",
    "timestamp_folder",
    "user_config_dir",
    "user_data_dir",
    "verify",
]
