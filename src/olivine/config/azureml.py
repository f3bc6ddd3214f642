"""Olive's Azure ML settings: the ``azureml_client`` block and the parts of an ``AzureML`` system.

Field names and defaults are Olive's (0.7 - 0.9.2, ``olive/azureml/azureml_client.py`` and
``olive/systems/common.py``); unlike Olive, unknown keys are errors. The ``AzureML`` system itself is in
:mod:`olivine.config.systems`; its behaviour in :mod:`olivine.hosts.azureml`.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from olivine.config.base import StrictModel


class AzureMLClientConfig(StrictModel):
    """Which workspace, and how patiently to talk to it (Olive's ``azureml_client``)."""

    subscription_id: str | None = None
    resource_group: str | None = None
    workspace_name: str | None = None
    aml_config_path: str | None = Field(
        default=None, description="a workspace config.json; when given, the three names above are not needed"
    )
    read_timeout: int = Field(default=60, gt=0, description="seconds, for each HTTP read")
    max_operation_retries: int = Field(default=3, ge=0)
    operation_retry_interval: int = Field(default=5, ge=0, description="seconds, doubled after each retry")
    default_auth_params: dict[str, Any] | None = Field(
        default=None, description="keyword arguments for azure.identity.DefaultAzureCredential"
    )
    keyvault_name: str | None = None

    @model_validator(mode="after")
    def _workspace_named(self) -> AzureMLClientConfig:
        if self.aml_config_path is None:
            missing = [
                k for k in ("subscription_id", "resource_group", "workspace_name") if not getattr(self, k)
            ]
            if missing:
                raise ValueError(
                    f"{', '.join(missing)} must be given when aml_config_path is not "
                    "(the workspace: subscription_id, resource_group, workspace_name, or aml_config_path)"
                )
        return self


class AzureMLDockerConfig(StrictModel):
    """An environment built from a base image (with a conda file) or a Dockerfile and its context."""

    base_image: str | None = None
    dockerfile: str | None = None
    build_context_path: str | None = None
    conda_file_path: str | None = None
    name: str | None = None
    version: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> AzureMLDockerConfig:
        if self.base_image is None and self.build_context_path is None:
            raise ValueError("give base_image, or build_context_path (and dockerfile)")
        return self


class AzureMLEnvironmentConfig(StrictModel):
    """A registered Azure ML environment, by name and version or label."""

    name: str
    version: str | None = None
    label: str | None = None

    def reference(self) -> str:
        """``azureml:<name>:<version>`` / ``azureml:<name>@<label>`` (``@latest`` when neither)."""
        if self.version:
            return f"azureml:{self.name}:{self.version}"
        return f"azureml:{self.name}@{self.label or 'latest'}"
