"""The user's hosts file: named hosts and datastores, the one place credentials may be written.

``$OLIVINE_HOME/hosts.yaml`` when ``OLIVINE_HOME`` is set, else ``$XDG_CONFIG_HOME/olivine/hosts.yaml``::

    default_host: gpu-box            # optional: used when neither --host nor workflow_host is given
    default_datastore: team-blob     # optional: used when the host names none
    hosts:
      gpu-box: {type: LocalWorker, datastores: team-blob, cancel_grace_s: 20}
    datastores:
      team-blob:
        url: az://exports/olivine
        options: {account_name: dev, account_key: "..."}

Secrets stay here: job specs name the profile instead of copying its options, and everything written
to logs, status files, manifests or the job store uses :meth:`DatastoreProfile.public_options`.
"""

from __future__ import annotations

import logging
import stat
from pathlib import Path
from typing import Any

from pydantic import ValidationError, field_validator

from olivine.config.base import StrictModel
from olivine.config.datastores import url_credentials_problem
from olivine.config.loader import format_validation_error, read_config_file
from olivine.config.systems import SystemConfig, normalize_system
from olivine.config.typed import prefixed
from olivine.datastores.paths import user_config_dir
from olivine.datastores.redact import redact_config, scrub_url
from olivine.errors import ConfigError, ReferenceNotFoundError

logger = logging.getLogger(__name__)


def hosts_file_path() -> Path:
    """Where the hosts file is looked for (it need not exist)."""
    return user_config_dir() / "hosts.yaml"


class DatastoreProfile(StrictModel):
    """A named datastore: an fsspec URL and the backend's options, credentials included."""

    url: str
    options: dict[str, Any] = {}

    @field_validator("url")
    @classmethod
    def _no_credentials_in_url(cls, value: str) -> str:
        problem = url_credentials_problem(value)
        if problem:
            raise ValueError(f"the datastore URL {problem}")
        return value

    def public_options(self) -> dict[str, Any]:
        """The options without credentials: safe for job specs, logs and status files."""
        public: dict[str, Any] = redact_config(self.options)
        return public

    def has_secrets(self) -> bool:
        return self.public_options() != self.options

    def __repr__(self) -> str:
        return f"DatastoreProfile(url={scrub_url(self.url)!r}, options={self.public_options()!r})"

    __str__ = __repr__


class HostsFile(StrictModel):
    """The parsed hosts file."""

    default_host: str | None = None
    default_datastore: str | None = None
    hosts: dict[str, SystemConfig] = {}
    datastores: dict[str, DatastoreProfile] = {}

    @field_validator("hosts", mode="before")
    @classmethod
    def _normalize_hosts(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: prefixed(f"hosts.{k}", normalize_system, v) for k, v in value.items()}
        return value


class Profiles:
    """Name lookups in the hosts file, with errors that say which file was read and what it defines.

    Args:
        path: the hosts file; default :func:`hosts_file_path`. A missing file means no profiles.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else hosts_file_path()
        self.data = self._load()

    def _load(self) -> HostsFile:
        if not self.path.is_file():
            return HostsFile()
        raw = read_config_file(self.path)
        try:
            data = HostsFile.model_validate(raw)
        except ValidationError as exc:
            key, message = format_validation_error(exc)
            raise ConfigError(message, path=key, file=str(self.path)) from None
        except ConfigError as exc:
            raise exc.with_file(str(self.path)) from None
        if any(d.has_secrets() for d in data.datastores.values()) and _readable_by_others(self.path):
            logger.warning(
                "%s holds credentials but other users can read it; run: chmod 600 %s", self.path, self.path
            )
        return data

    def host(self, name: str) -> SystemConfig:
        """The system config of host ``name``.

        Raises:
            ReferenceNotFoundError: the file does not define it.
        """
        return self._find("host", name, self.data.hosts)

    def datastore(self, name: str) -> DatastoreProfile:
        """The datastore ``name`` (credentials included: do not log it).

        Raises:
            ReferenceNotFoundError: the file does not define it.
        """
        return self._find("datastore", name, self.data.datastores)

    def has_host(self, name: str) -> bool:
        return name in self.data.hosts

    def has_datastore(self, name: str) -> bool:
        return name in self.data.datastores

    def _find(self, kind: str, name: str, defined: dict[str, Any]) -> Any:
        if name in defined:
            return defined[name]
        if not self.path.is_file():
            where = f"there is no hosts file ({self.path} does not exist)"
        else:
            where = f"{self.path} defines: {', '.join(sorted(defined)) or f'no {kind}s'}"
        raise ReferenceNotFoundError(f"{kind} '{name}' is not defined; {where}")


def _readable_by_others(path: Path) -> bool:
    return bool(path.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH))
