"""Credential scrubbing for the datastore layer: :mod:`olivine.redaction` (a leaf module, so that the
scrubbing pump process can use it without importing the datastores)."""

from olivine.redaction import (
    MIN_SECRET_CHARS,
    REDACTED,
    env_secrets,
    is_secret_key,
    looks_like_secret,
    redact_config,
    scrub_text,
    scrub_url,
    secret_values,
)

__all__ = [
    "MIN_SECRET_CHARS",
    "REDACTED",
    "env_secrets",
    "is_secret_key",
    "looks_like_secret",
    "redact_config",
    "scrub_text",
    "scrub_url",
    "secret_values",
]
