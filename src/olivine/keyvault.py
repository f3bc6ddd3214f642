"""The Hugging Face token of an Azure ML job, read from the workspace's Key Vault at run time.

Olive's convention (0.7 - 0.9.2, ``olive/common/hf/login.py``): an ``AzureML`` system with
``hf_token: true`` and ``azureml_client.keyvault_name`` gives its job the environment variables
``HF_LOGIN`` and ``KEYVAULT_NAME`` (the vault's *name*, never the token); the job's runner reads the
secret named ``hf-token`` from ``https://<keyvault_name>.vault.azure.net/`` and logs in to Hugging Face
with it. Olivine's worker does the same before the workflow starts, with ``DefaultAzureCredential`` (on
Azure ML compute: the compute's managed identity, which needs *get* permission on the vault's secrets),
and puts the token in the worker's own environment as ``HF_TOKEN`` (what huggingface_hub and
transformers read), never on disk, in the job YAML or in a log: the worker's scrubber learns it first.

A leaf module: azure-keyvault-secrets and azure-identity are imported only when a job asks for the token.
"""

from __future__ import annotations

import logging
import os
from collections.abc import MutableMapping
from typing import Any

from olivine.errors import HostError, MissingDependencyError

logger = logging.getLogger(__name__)

#: Environment variables the Azure ML job carries (Olive's names).
HF_LOGIN_ENV = "HF_LOGIN"
KEYVAULT_ENV = "KEYVAULT_NAME"
#: The secret holding the Hugging Face token (Olive's name).
HF_TOKEN_SECRET = "hf-token"
_INSTALL = "pip install 'olivine[azureml]'"


def vault_url(name: str) -> str:
    """The URL of Key Vault ``name`` in the public Azure cloud."""
    return f"https://{name}.vault.azure.net/"


def hf_login_requested(environ: MutableMapping[str, str] | None = None) -> bool:
    """Whether this process runs a job that asked for the Hugging Face token (``HF_LOGIN`` set)."""
    env = os.environ if environ is None else environ
    return env.get(HF_LOGIN_ENV, "").strip().lower() not in ("", "0", "false", "no")


def read_secret(url: str, name: str, credential: Any, **client_kwargs: Any) -> str:
    """The value of secret ``name`` in the vault at ``url`` (one GET, plus the vault's auth challenge).

    Raises:
        MissingDependencyError: azure-keyvault-secrets is not installed (with the pip hint).
        HostError: the vault could not be read (one line, no SDK traceback, never the value).
    """
    try:
        from azure.keyvault.secrets import SecretClient
    except ModuleNotFoundError as exc:
        raise MissingDependencyError(
            f"hf_token needs the package '{exc.name}' in the job's environment: {_INSTALL}"
        ) from None
    from olivine.azureml_client import one_line

    try:
        with SecretClient(vault_url=url, credential=credential, **client_kwargs) as client:
            value = client.get_secret(name).value
    except Exception as exc:
        raise HostError(f"cannot read secret '{name}' from Key Vault {url}: {one_line(exc)}") from None
    if not value:
        raise HostError(f"secret '{name}' in Key Vault {url} is empty")
    return str(value)


def hf_login_from_keyvault(
    environ: MutableMapping[str, str] | None = None, *, credential: Any = None
) -> str | None:
    """If the job asked for it (``HF_LOGIN``), read the Hugging Face token from Key Vault
    ``KEYVAULT_NAME`` and set it as ``HF_TOKEN`` in ``environ`` (default: this process's).

    Returns:
        The token (for the caller's scrubber), or None when the job did not ask for one.

    Raises:
        HostError: ``KEYVAULT_NAME`` is missing, or the vault could not be read.
        MissingDependencyError: the Azure SDK packages are missing.
    """
    env = os.environ if environ is None else environ
    if not hf_login_requested(env):
        return None
    name = env.get(KEYVAULT_ENV, "").strip()
    if not name:
        raise HostError(
            f"the job asks for the Hugging Face token ({HF_LOGIN_ENV}) but names no Key Vault "
            f"({KEYVAULT_ENV}); set azureml_client.keyvault_name"
        )
    if credential is None:
        credential = _default_credential()
    url = vault_url(name)
    logger.info("reading the Hugging Face token (secret '%s') from Key Vault %s", HF_TOKEN_SECRET, name)
    token = read_secret(url, HF_TOKEN_SECRET, credential)
    env["HF_TOKEN"] = token
    return token


def _default_credential() -> Any:
    try:
        from azure.identity import DefaultAzureCredential
    except ModuleNotFoundError as exc:
        raise MissingDependencyError(
            f"hf_token needs the package '{exc.name}' in the job's environment: {_INSTALL}"
        ) from None
    return DefaultAzureCredential()
