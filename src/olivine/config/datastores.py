"""Datastore definitions: a name -> an fsspec URL plus backend options (never secrets)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from pydantic import ConfigDict, field_validator, model_validator

from olivine.config.base import StrictModel
from olivine.redaction import SECRET_KEYS  # defined beside the scrubbing that uses them

# Query parameters that carry a credential: Azure SAS signatures, presigned S3 URLs, tokens.
_SIGNED_QUERY = re.compile(
    r"(?i)(^|&)(sig|x-amz-signature|x-amz-credential|x-amz-security-token|token|"
    r"access_token|password|secret|sharedaccesssignature)="
)


def url_credentials_problem(url: str) -> str | None:
    """Why a datastore URL must be refused because it carries credentials (None if it carries none).

    Credentials in a URL travel with it into job records, status files, logs and folder names; they
    belong in the hosts file's datastore ``options``. The message never repeats the credential.
    """
    if "://" not in url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return "is not a valid URL"
    if "@" in parts.netloc:
        return (
            "must not carry a user name or password (user:password@); put credentials in the hosts "
            "file's datastore options"
        )
    if _SIGNED_QUERY.search(parts.query):
        return "must not carry a signed query string (SAS token, presigned URL); put it in the hosts file"
    return None


class DatastoreConfig(StrictModel):
    model_config = ConfigDict(extra="allow")

    url: str

    @field_validator("url")
    @classmethod
    def _no_credentials_in_url(cls, value: str) -> str:
        problem = url_credentials_problem(value)
        if problem:
            raise ValueError(f"the datastore URL {problem}")
        return value

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
