"""The ``MLClient`` of an ``azureml_client`` config (Olive's semantics), and SDK errors as one line.

A leaf module shared by the Azure ML host and the ``azureml://`` datastore; azure-ai-ml is imported only
when a client is made.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from olivine.config.azureml import AzureMLClientConfig
from olivine.errors import ConfigError, MissingDependencyError

_INSTALL = "pip install 'olivine[azureml]'"


def ml_client(config: AzureMLClientConfig) -> Any:
    """An ``azure.ai.ml.MLClient`` for the workspace ``config`` names (built offline: nothing is asked of
    Azure until it is used). Credential: ``DefaultAzureCredential(**default_auth_params)``.

    Raises:
        MissingDependencyError: azure-ai-ml or azure-identity is not installed (with the pip hint).
        ConfigError: ``aml_config_path`` names no file, or the file is not a workspace config.
    """
    try:
        from azure.ai.ml import MLClient
        from azure.identity import DefaultAzureCredential
    except ModuleNotFoundError as exc:
        raise MissingDependencyError(
            f"the Azure ML host needs the package '{exc.name}': {_INSTALL}"
        ) from None
    for name in ("azure.ai.ml", "azure.identity", "azure.core.pipeline.policies.http_logging_policy"):
        log = logging.getLogger(name)
        # As Olive: the SDK logs each request, and azure.identity a multi-line WARNING per failed
        # credential, which our one-line errors already say. A level the user set is kept.
        if not log.level:
            log.setLevel(logging.ERROR)
    try:
        credential = DefaultAzureCredential(**(config.default_auth_params or {}))
    except (TypeError, ValueError) as exc:  # bad default_auth_params, or AZURE_* variables
        raise ConfigError(
            f"no Azure credential: {one_line(exc)}", path="azureml_client.default_auth_params"
        ) from None
    if config.aml_config_path:
        path = Path(config.aml_config_path).expanduser()
        if not path.is_file():
            raise ConfigError(f"no such file {path}", path="azureml_client.aml_config_path")
        try:
            return MLClient.from_config(
                credential=credential, path=str(path), read_timeout=config.read_timeout
            )
        except Exception as exc:
            raise ConfigError(one_line(exc), path="azureml_client.aml_config_path", file=str(path)) from None
    return MLClient(
        credential=credential,
        subscription_id=config.subscription_id,
        resource_group_name=config.resource_group,
        workspace_name=config.workspace_name,
        read_timeout=config.read_timeout,
    )


def one_line(exc: BaseException) -> str:
    """An SDK exception as one line: its type and the first line of its message (no traceback, no
    multi-line service dump)."""
    text = str(exc).strip().splitlines()
    first = text[0].strip() if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
