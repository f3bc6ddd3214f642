"""Keep credentials out of everything Olivine prints or writes: URLs, error messages, manifests, logs.

A leaf module (the standard library only): the scrubbing pump process (:mod:`olivine.scrub_pump`)
imports it without the rest of Olivine.

Three tools, from narrow to broad:

* :func:`scrub_url` drops the user-info and the query string of a URL (SAS tokens, presigned S3
  signatures and ``user:password@`` all live there).
* :func:`scrub_text` cleans free text such as a backend's exception message: known secret values,
  every URL in it, and ``name=value`` pairs whose name is a credential.
* :func:`redact_config` copies a JSON-like config, dropping credential keys at any depth and any value
  that looks like a connection string or a SAS token.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

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
        "api_key",
        "apikey",
        "access_token",
        "auth_token",
        "private_key",
        "passwd",
    }
)

REDACTED = "***"

# Suffixes that make a key a credential even when it is not spelled exactly as in SECRET_KEYS
# (e.g. ``azure_storage_account_key``). Bare ``_key``/``_token`` are not here on purpose: configs
# have harmless ``cache_key`` or ``pad_token`` keys that the manifest should keep.
_SECRET_SUFFIXES = (
    "_account_key",
    "_secret",
    "_password",
    "_connection_string",
    "_sas_token",
    "_secret_access_key",
    "_session_token",
    "_client_secret",
    "_access_token",
    "_api_key",
    "_apikey",
    "_auth_token",
    "_private_key",
    "_passwd",
)

# The scheme is bounded: unbounded, every position of a long run of letters (a base64 blob in a log line)
# would scan to the run's end before failing, quadratic in the run's length. A longer scheme still
# matches from 32 characters before its "://", which is enough to find and clean the URL.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,31}://[^\s'\"<>]+")
# name=value / "name": "value" pairs naming a credential, as found in connection strings, SAS tokens,
# dict reprs and HTTP error dumps; "=" may be percent-encoded (%3D) when the pair sits in a URL path.
_PAIR_NAMES = sorted(
    {*SECRET_KEYS, "accountkey", "sharedaccesssignature", "sharedaccesskey", "sig", "pwd", "x-amz-signature"}
    | {"x-amz-credential", "x-amz-security-token", "aws_access_key_id"},
    key=len,
    reverse=True,
)
_PAIR = re.compile(
    r"(?i)(?<![A-Za-z0-9_-])("
    + "|".join(re.escape(n) for n in _PAIR_NAMES)
    + r")(['\"]?\s*(?:[=:]|%3[Dd])\s*)"
    r"(\"[^\"]*\"|'[^']*'|[^;&\s,}'\"]+)"
)
_CONNECTION_STRING = re.compile(
    r"(?i)(AccountKey|SharedAccessSignature|SharedAccessKey|DefaultEndpointsProtocol)\s*="
)
_SAS = re.compile(r"(?i)(^|[?&])sig=[^&]+")
_PRESIGNED = re.compile(r"(?i)X-Amz-(Signature|Credential|Security-Token)=")


# Environment variable names whose values are credentials. Anchored on the *end* of a name part
# (``..._TOKEN``, ``..._SECRET_ACCESS_KEY``), so ``TOKENIZERS_PARALLELISM`` is not one.
_SECRET_ENV = re.compile(
    r"(?i)(^|_)(TOKEN|SECRET|PASSWORD|PASSWD|PWD|CREDENTIALS?|ACCOUNT_KEY|ACCESS_KEY|ACCESS_KEY_ID|API_KEY|"
    r"SECRET_ACCESS_KEY|SESSION_TOKEN|CONNECTION_STRING|CONN_STR|SAS_TOKEN|SAS|STORAGE_KEY|CLIENT_SECRET|"
    r"PRIVATE_KEY|AUTH)$"
)
# Names that match the pattern but hold no secret.
_NOT_SECRET_ENV = frozenset({"PWD", "OLDPWD"})
#: Shorter values are not scrubbed: they would match everywhere and protect nothing.
MIN_SECRET_CHARS = 6


#: Config keys whose mapping holds environment variables (name -> value).
_ENV_MAPPINGS = frozenset({"env_vars", "environment_variables", "env"})


def is_secret_env_name(name: str) -> bool:
    """Whether an environment variable's name says it holds a credential (``HF_TOKEN``,
    ``AZURE_STORAGE_KEY``, ``AWS_SECRET_ACCESS_KEY``...; not ``PWD`` or ``TOKENIZERS_PARALLELISM``)."""
    return name.upper() not in _NOT_SECRET_ENV and bool(_SECRET_ENV.search(name))


def env_secrets(environ: Mapping[str, str] | None = None) -> list[str]:
    """The values of environment variables that hold credentials (by name), longest first:
    ``AWS_SECRET_ACCESS_KEY``, ``AZURE_STORAGE_CONNECTION_STRING``, ``HF_TOKEN``, ``*_PASSWORD``..."""
    env = os.environ if environ is None else environ
    found = {
        value
        for name, value in env.items()
        if name.upper() not in _NOT_SECRET_ENV
        and _SECRET_ENV.search(name)
        and len(value.strip()) >= MIN_SECRET_CHARS
    }
    return sorted(found, key=len, reverse=True)


def is_secret_key(key: str) -> bool:
    """Whether a config key names a credential (case- and ``-``/``_``-insensitive)."""
    norm = key.lower().replace("-", "_")
    return norm in SECRET_KEYS or norm.endswith(_SECRET_SUFFIXES)


def looks_like_secret(value: str) -> bool:
    """Whether a string value carries a credential: a connection string, a SAS token, a presigned URL,
    or a URL with a password in it."""
    if _CONNECTION_STRING.search(value) or _PRESIGNED.search(value):
        return True
    query = value.split("?", 1)[1] if "?" in value else value
    if _SAS.search(query):
        return True
    if "://" in value:
        try:
            return urlsplit(value).password is not None
        except ValueError:
            return False
    return False


def scrub_url(url: str) -> str:
    """Return ``url`` without user-info, query string and fragment (where credentials travel)."""
    try:
        parts = urlsplit(url)
    except ValueError:  # malformed (e.g. a bad IPv6 host): keep only the scheme
        return url.split("://", 1)[0] + "://" + REDACTED if "://" in url else REDACTED
    if not parts.scheme or ("@" not in parts.netloc and not parts.query and not parts.fragment):
        return url  # nothing to drop: keep the URL exactly as written
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def scrub_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove credentials from free text (typically an exception message from a backend).

    Args:
        text: the text to clean.
        secrets: secret values known to the caller (e.g. the datastore's account key); each occurrence
            is replaced by ``***``. Values shorter than 4 characters are ignored (they would match
            everywhere and protect nothing).

    Returns:
        The cleaned text.
    """
    for secret in sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = _URL.sub(lambda m: scrub_url(m.group(0)), text)
    return _PAIR.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)


def redact_config(value: Any, secrets: Iterable[str] | None = None) -> Any:
    """Copy a JSON-like value without credentials.

    Mapping keys for which :func:`is_secret_key` holds are dropped at any depth; string values (also
    inside lists) that :func:`looks_like_secret` are dropped too. Other strings are kept, scrubbed of
    ``secrets`` (default: the credential values of the environment, :func:`env_secrets`), which may
    sit inside free text such as an error message.
    """
    known = tuple(env_secrets() if secrets is None else secrets)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if is_secret_key(str(key)) or (isinstance(item, str) and looks_like_secret(item)):
                continue
            if str(key).lower() in _ENV_MAPPINGS and isinstance(item, Mapping):
                # Environment variables (a Ray runtime_env's env_vars, an Azure ML environment's): judged
                # by variable name, as the process scrubber judges the environment (HF_TOKEN, ...).
                item = {k: v for k, v in item.items() if not is_secret_env_name(str(k))}
            out[str(key)] = redact_config(item, known)
        return out
    if isinstance(value, (list, tuple)):
        return [redact_config(v, known) for v in value if not (isinstance(v, str) and looks_like_secret(v))]
    if isinstance(value, str) and known:
        return _replace_known(value, known)
    return value


def _replace_known(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def secret_values(options: Mapping[str, Any]) -> list[str]:
    """The string values of ``options`` that are credentials (by key or by look), for :func:`scrub_text`."""
    found: list[str] = []
    for key, value in options.items():
        if isinstance(value, Mapping):
            found.extend(secret_values(value))
        elif isinstance(value, str) and (is_secret_key(str(key)) or looks_like_secret(value)):
            found.append(value)
    return found
