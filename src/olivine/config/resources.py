"""Olive's resource paths: a path written as a mapping ``{type, config: {...}}`` instead of a string.

Olive (``olive/resource_path.py``) accepts, wherever it reads a file, folder or model, either a string or
``{"type": "file" | "folder" | "string_name", "config": {"path" | "name": ...}}`` (the ``config`` keys may
also be written flat), and up to 0.9 the Azure ML kinds ``azureml_model``, ``azureml_registry_model``,
``azureml_datastore`` and ``azureml_job_output``. A local kind is read as its plain path; an Azure ML kind
names data that lives in a workspace, which Olivine does not read: it is refused with what to do instead.
"""

from __future__ import annotations

from typing import Any

#: Olive's local resource kinds and the key that holds the value.
LOCAL_KINDS = {"file": "path", "folder": "path", "string_name": "name"}
#: Olive's Azure ML resource kinds (0.6 to 0.9; 0.13 keeps azureml_registry_model only).
AZUREML_KINDS = ("azureml_model", "azureml_registry_model", "azureml_datastore", "azureml_job_output")


def is_resource(value: Any) -> bool:
    """Whether ``value`` is written as one of Olive's resource-path mappings."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("type"), str)
        and value["type"].lower() in (*LOCAL_KINDS, *AZUREML_KINDS)
    )


def local_value(value: Any) -> Any:
    """The plain string of a local resource mapping; anything else is returned unchanged."""
    if not is_resource(value):
        return value
    kind = value["type"].lower()
    if kind not in LOCAL_KINDS:
        return value
    inner = value.get("config") if isinstance(value.get("config"), dict) else value
    found = inner.get(LOCAL_KINDS[kind])
    return found if isinstance(found, str) else value


def refusal(value: Any) -> str | None:
    """Why an Azure ML resource mapping cannot be read here (None for anything else)."""
    if not is_resource(value) or value["type"].lower() not in AZUREML_KINDS:
        return None
    kind = value["type"]
    return (
        f"an Azure ML resource (type '{kind}', Olive 0.9 and before) is not read by Olivine: "
        "copy the files to a local folder and give its path"
    )


#: Keys whose value Olive reads as a resource path (any depth of the config).
PATH_KEYS = frozenset(
    {
        "model_path",
        "adapter_path",
        "model_script",
        "script_dir",
        "user_script",
        "data_dir",
        "data_files",
        "model_config_path",
    }
)


def plain_paths(value: Any, path: str = "") -> Any:
    """``value`` (a raw config mapping) with every resource mapping under a path key made a plain path.

    Raises:
        ConfigError: an Azure ML resource, naming its key path and what to do.
    """
    from olivine.errors import NotSupportedError

    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if key in PATH_KEYS and is_resource(item):
                reason = refusal(item)
                if reason is not None:
                    raise NotSupportedError(reason, path=where)
                out[key] = local_value(item)
            else:
                out[key] = plain_paths(item, where)
        return out
    if isinstance(value, list):
        return [plain_paths(item, f"{path}.{i}" if path else str(i)) for i, item in enumerate(value)]
    return value
