"""Submitting a Ray job over the Jobs REST API with the standard library, so that ``olivine run`` does not
import Ray (``ray.job_submission`` takes about a second of CPU to import: most of a submission).

It does what ``JobSubmissionClient.submit_job`` does for Olivine's submissions: a local ``working_dir``
is zipped and uploaded to the cluster (``PUT /api/packages/gcs/<name>.zip``, skipped when the cluster
has it: ``GET`` first) and replaced by its ``gcs://`` URI, then ``POST /api/jobs/`` with the request's
JSON (keys left out when None, as the SDK does). HTTP errors raise ``RuntimeError("Request failed with
status code <code>: <body>.")`` like the SDK; an unreachable head raises an ``OSError`` (urllib's).
Reading jobs (status, logs, stop, list) stays with the SDK, imported only by the commands that need it.
Token authentication (``RAY_AUTH_MODE=token``) is not supported here: such a cluster refuses with 401.
"""

from __future__ import annotations

import hashlib
import io
import json
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

_TIMEOUT_S = 60.0


class RayJobsAPI:
    """The Jobs API of the Ray dashboard at ``address`` (``http://head:8265``)."""

    def __init__(self, address: str, timeout_s: float = _TIMEOUT_S) -> None:
        self.address = address.rstrip("/")
        self.timeout_s = timeout_s

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
        status, text = self._request("POST", "/api/jobs/", body, "application/json")
        if status != 200:
            raise RuntimeError(f"Request failed with status code {status}: {text}.")
        return str(json.loads(text).get("submission_id", submission_id))

    def _upload_dir(self, folder: Path) -> str:
        """Zip ``folder`` (its files at the archive's root, as Ray does) and upload it unless the cluster
        has that content already; its ``gcs://`` URI."""
        data = _zip_folder(folder)
        name = f"_ray_pkg_{hashlib.sha256(data).hexdigest()[:32]}.zip"
        path = f"/api/packages/gcs/{name}"
        status, _ = self._request("GET", path)
        if status != 200:
            status, text = self._request("PUT", path, data, "application/octet-stream")
            if status != 200:
                raise RuntimeError(f"Request failed with status code {status}: {text}.")
        return f"gcs://{name}"

    def _request(
        self, method: str, path: str, body: bytes | None = None, content_type: str | None = None
    ) -> tuple[int, str]:
        request = urllib.request.Request(self.address + path, data=body, method=method)
        if content_type:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return int(response.status), response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read().decode("utf-8", "replace")


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
