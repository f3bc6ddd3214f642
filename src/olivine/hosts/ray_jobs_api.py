"""The Ray Jobs REST API with the standard library, so that no Olivine command imports Ray
(``ray.job_submission`` takes about a second of CPU to import: most of a ``status`` or a submission).

It does what ``JobSubmissionClient`` does for Olivine's jobs:

* ``submit_job``: a local ``working_dir`` is zipped and uploaded to the cluster
  (``PUT /api/packages/gcs/<name>.zip``, skipped when the cluster has it: ``GET`` first) and replaced by
  its ``gcs://`` URI, then ``POST /api/jobs/`` with the request's JSON (keys left out when None);
* ``get_job_info`` (``GET /api/jobs/<id>``), ``list_jobs`` (``GET /api/jobs/``), ``get_job_logs``
  (``GET /api/jobs/<id>/logs``), ``stop_job`` (``POST /api/jobs/<id>/stop``). Following a log polls
  ``get_job_logs`` (the SDK's ``tail_job_logs`` is a websocket, which the standard library lacks).

HTTP errors raise :class:`RayRequestError` (a ``RuntimeError`` worded like the SDK's: ``Request failed
with status code <code>: <body>.``); an unreachable head raises an ``OSError`` (urllib's).

Token authentication (``RAY_AUTH_MODE=token``), as Ray's own clients do it: when ``RAY_AUTH_MODE`` is
``token`` in this process's environment, every request carries ``Authorization: Bearer <token>``, the
token taken from (first found) ``RAY_AUTH_TOKEN``, the file named by ``RAY_AUTH_TOKEN_PATH``, or
``~/.ray/auth_token`` (first line, whitespace trimmed). The token is read when a client is made and held
in that object only: never logged, put in an error, a job record or a job's environment. A cluster that
refuses a request for want of a (valid) token raises :class:`RayAuthError`, a :class:`HostError`
that names what to set and never the token.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from olivine.errors import HostError

_TIMEOUT_S = 60.0

AUTH_MODE_ENV = "RAY_AUTH_MODE"
TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"
_PUT = (
    f"put the cluster's token in {TOKEN_ENV}, in a file named by {TOKEN_PATH_ENV}, or in ~/.ray/auth_token "
    "(where Ray's own clients look)"
)
_WHERE = f"set {AUTH_MODE_ENV}=token and {_PUT}"


class RayRequestError(RuntimeError):
    """The Jobs API answered with an HTTP error (``status``: its code)."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"Request failed with status code {status}: {body}.")
        self.status = status


class RayAuthError(HostError):
    """The cluster requires a token this process lacks, or refused the one it sent."""


@dataclass(frozen=True)
class RayJobInfo:
    """What Olivine reads of a Ray job (a part of the SDK's ``JobDetails``)."""

    submission_id: str | None
    status: str
    message: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RayJobInfo:
        return cls(
            submission_id=data.get("submission_id"),
            status=str(data["status"]),
            message=data.get("message"),
        )


def find_token(environ: Mapping[str, str] | None = None, home: Path | None = None) -> tuple[str, str] | None:
    """The token Ray's clients would send and where it came from (a variable's or a file's name, never
    the token), or None when there is none. Raises :class:`RayAuthError` when ``RAY_AUTH_TOKEN_PATH``
    names a file that cannot be read or is empty (Ray's clients refuse that too)."""
    env = os.environ if environ is None else environ
    token = env.get(TOKEN_ENV, "").strip()
    if token:
        return token, TOKEN_ENV
    path = env.get(TOKEN_PATH_ENV, "")
    if path:
        token = _first_line(Path(path))
        if not token:
            raise RayAuthError(f"{TOKEN_PATH_ENV} is set but {path} cannot be read or is empty")
        return token, f"{TOKEN_PATH_ENV} ({path})"
    default = (home or Path.home()) / ".ray" / "auth_token"
    token = _first_line(default)
    return (token, str(default)) if token else None


def token_auth_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process's Ray clients use token authentication (``RAY_AUTH_MODE=token``)."""
    env = os.environ if environ is None else environ
    return env.get(AUTH_MODE_ENV, "").strip().lower() == "token"


def _first_line(path: Path) -> str:
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            return fh.readline().strip()
    except OSError:
        return ""


class RayJobsAPI:
    """The Jobs API of the Ray dashboard at ``address`` (``http://head:8265``)."""

    def __init__(self, address: str, timeout_s: float = _TIMEOUT_S) -> None:
        self.address = address.rstrip("/")
        self.timeout_s = timeout_s
        self._token_source: str | None = None
        self.__headers: dict[str, str] = {}
        if token_auth_enabled():
            found = find_token()
            if found is None:
                raise RayAuthError(
                    f"{AUTH_MODE_ENV}=token but no Ray authentication token was found for the cluster at "
                    f"{self.address}; {_PUT}"
                )
            token, self._token_source = found
            self.__headers["Authorization"] = f"Bearer {token}"

    def __repr__(self) -> str:
        return f"RayJobsAPI({self.address!r})"

    # -- submitting ---------------------------------------------------------------------------------
    def submit_job(
        self,
        *,
        entrypoint: str,
        submission_id: str,
        runtime_env: dict[str, Any] | None = None,
        metadata: dict[str, str] | None = None,
        entrypoint_num_cpus: float | None = None,
        entrypoint_memory: int | None = None,
        entrypoint_resources: dict[str, float] | None = None,
    ) -> str:
        """Submit the job; return its submission id."""
        env = dict(runtime_env or {})
        working_dir = env.get("working_dir")
        if working_dir and Path(working_dir).is_dir():
            env["working_dir"] = self._upload_dir(Path(working_dir))
        request = {
            "entrypoint": entrypoint,
            "submission_id": submission_id,
            "runtime_env": env,
            "metadata": metadata,
            "entrypoint_num_cpus": entrypoint_num_cpus,
            "entrypoint_memory": entrypoint_memory,
            "entrypoint_resources": entrypoint_resources,
        }
        body = json.dumps({k: v for k, v in request.items() if v is not None}).encode()
        text = self._ok("POST", "/api/jobs/", body, "application/json")
        return str(json.loads(text).get("submission_id", submission_id))

    def _upload_dir(self, folder: Path) -> str:
        """Zip ``folder`` (its files at the archive's root, as Ray does) and upload it unless the cluster
        has that content already; its ``gcs://`` URI."""
        data = _zip_folder(folder)
        name = f"_ray_pkg_{hashlib.sha256(data).hexdigest()[:32]}.zip"
        path = f"/api/packages/gcs/{name}"
        status, _ = self._request("GET", path)
        if status != 200:
            self._ok("PUT", path, data, "application/octet-stream")
        return f"gcs://{name}"

    # -- reading and stopping -----------------------------------------------------------------------
    def get_job_info(self, job_id: str) -> RayJobInfo:
        """The job's state; :class:`RayRequestError` (404) when the cluster does not know it."""
        return RayJobInfo.from_json(json.loads(self._ok("GET", f"/api/jobs/{_quote(job_id)}")))

    def list_jobs(self) -> list[RayJobInfo]:
        """Every job the cluster knows (one request)."""
        return [RayJobInfo.from_json(item) for item in json.loads(self._ok("GET", "/api/jobs/"))]

    def get_job_logs(self, job_id: str) -> str:
        """The job's whole log so far."""
        return str(json.loads(self._ok("GET", f"/api/jobs/{_quote(job_id)}/logs")).get("logs") or "")

    def stop_job(self, job_id: str) -> bool:
        """Ask Ray to stop the job (SIGTERM, then SIGKILL after its grace); True if it was running."""
        return bool(json.loads(self._ok("POST", f"/api/jobs/{_quote(job_id)}/stop")).get("stopped"))

    # -- HTTP ---------------------------------------------------------------------------------------
    def _ok(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None) -> str:
        status, text = self._request(method, path, body, content_type)
        if status != 200:
            raise RayRequestError(status, text)
        return text

    def _request(
        self, method: str, path: str, body: bytes | None = None, content_type: str | None = None
    ) -> tuple[int, str]:
        request = urllib.request.Request(self.address + path, data=body, method=method)
        if content_type:
            request.add_header("Content-Type", content_type)
        for name, value in self.__headers.items():
            request.add_unredirected_header(name, value)  # never forwarded to a redirect's host
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                status, text = int(response.status), response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            status, text = int(exc.code), exc.read().decode("utf-8", "replace")
        if status == 401:
            sent = f"the token from {self._token_source}" if self._token_source else "no token"
            raise RayAuthError(
                f"the Ray cluster at {self.address} requires token authentication and refused a request "
                f"that carried {sent}; {_WHERE}"
            )
        if status == 403 and self._token_source is not None:
            raise RayAuthError(
                f"the Ray cluster at {self.address} refused the authentication token from "
                f"{self._token_source}: check that it is the cluster's token"
            )
        return status, text


def _quote(job_id: str) -> str:
    return urllib.parse.quote(job_id, safe="")


def _zip_folder(folder: Path) -> bytes:
    """The files (and empty folders) under ``folder``, in a stable order and with fixed timestamps, so the
    same content gives the same archive (and the same package name)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder).as_posix()
            if path.is_file():
                info = zipfile.ZipInfo(rel, date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = (path.stat().st_mode & 0o777) << 16
                archive.writestr(info, path.read_bytes())
            elif path.is_dir() and not any(path.iterdir()):
                archive.writestr(zipfile.ZipInfo(rel + "/", date_time=(1980, 1, 1, 0, 0, 0)), b"")
    return buffer.getvalue()
