"""``azureml://datastores/<name>``: an Azure ML workspace's blob datastore, opened as ``az://``.

The workspace says which storage account and container the datastore is (``MLClient.datastores.get``);
from there it is an :class:`~olivine.datastores.azure.AzureBlobDatastore` with the same layout. Options
name the workspace (Olive's ``azureml_client`` keys: ``subscription_id``, ``resource_group``,
``workspace_name`` or ``aml_config_path``, ``read_timeout``, ``default_auth_params``) and may add the
``az://`` options (e.g. ``account_key`` from the hosts file; by default ``DefaultAzureCredential``, which
on Azure ML compute is the compute's managed identity).

Resolving needs the workspace; a machine that cannot reach it can still read the export through the
``az://`` URL this resolves to, which jobs record at submission.
"""

from __future__ import annotations

from typing import Any

from olivine.datastores.base import Datastore
from olivine.errors import ConfigError, DatastoreError

_WORKSPACE_KEYS = (
    "subscription_id",
    "resource_group",
    "workspace_name",
    "aml_config_path",
    "read_timeout",
    "max_operation_retries",
    "operation_retry_interval",
    "default_auth_params",
    "keyvault_name",
)


def parse(url: str) -> str:
    """The datastore name in ``azureml://datastores/<name>``."""
    rest = url.split("://", 1)[1] if "://" in url else ""
    parts = [p for p in rest.split("/") if p]
    if len(parts) != 2 or parts[0] != "datastores":
        raise ConfigError(f"expected azureml://datastores/<name>, got {url}")
    return parts[1]


class AzureMLDatastore(Datastore):
    """Only a resolver: :meth:`open_url` returns the ``az://`` datastore the workspace names."""

    scheme = "azureml"

    @classmethod
    def open_url(cls, url: str, options: dict[str, Any]) -> Datastore:
        name = parse(url)
        workspace = {k: options[k] for k in _WORKSPACE_KEYS if k in options}
        rest = {k: v for k, v in options.items() if k not in _WORKSPACE_KEYS}
        az_url, az_options = resolve(name, workspace)
        return Datastore.from_url(az_url, {**az_options, **rest})


def resolve(name: str, workspace: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(az:// URL, options)`` of the workspace's datastore ``name``.

    Raises:
        DatastoreError: the workspace cannot be reached or has no such blob datastore (one line).
    """
    from olivine.azureml_client import ml_client, one_line
    from olivine.config.azureml import AzureMLClientConfig

    client = ml_client(AzureMLClientConfig.model_validate(workspace))
    try:
        store = client.datastores.get(name)
    except Exception as exc:
        raise DatastoreError(f"Azure ML datastore '{name}': {one_line(exc)}") from None
    account = getattr(store, "account_name", None)
    container = getattr(store, "container_name", None)
    if not account or not container:
        raise DatastoreError(f"Azure ML datastore '{name}' is not a blob container ({type(store).__name__})")
    options: dict[str, Any] = {"account_name": account}
    endpoint = getattr(store, "endpoint", None)
    if endpoint and endpoint != "core.windows.net":
        options["account_host"] = f"{account}.blob.{endpoint}"
    return f"az://{container}", options
