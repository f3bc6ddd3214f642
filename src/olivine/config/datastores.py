"""Datastore definitions: a name -> an fsspec URL plus backend options (never secrets)."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, model_validator

from olivine.config.base import StrictModel

# Keys that carry credentials. They must come from the environment or the user's file, never from a
# workflow file that gets copied, bundled and exported.
SECRET_KEYS = frozenset(
    {
        "account_key",
        "key",
        "secret",
        "token",
        "sas_token",
        "credential",
        "connection_string",
        "password",
        "aws_secret_access_key",
        "secret_access_key",
        "session_token",
        "client_secret",
    }
)


class DatastoreConfig(StrictModel):
    model_config = ConfigDict(extra="allow")

    url: str

    @model_validator(mode="before")
    @classmethod
    def _no_secrets(cls, value: Any) -> Any:
        if isinstance(value, dict):
            bad = sorted(k for k in value if str(k).lower() in SECRET_KEYS)
            if bad:
                raise ValueError(
                    f"credential key(s) {', '.join(bad)} are not allowed in a workflow file; "
                    "set them in the environment or in the user datastores file"
                )
        return value

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})
