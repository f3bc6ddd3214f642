"""Real object-store servers on 127.0.0.1 for the ``azure`` / ``s3`` tiers and bench/cloud_export.py.

* :class:`Azurite`: npm's ``azurite@3.35.0`` (runs on Node 20), installed once into a cache folder
  (``$OLIVINE_TEST_CACHE`` or ``~/.cache/olivine-tests``), started as its own process with telemetry off,
  stopped by its PID. It persists to a folder, so a stop and a start keep the blobs.
* :class:`MotoS3`: moto's ``ThreadedMotoServer`` in this process; its state lives in moto's module-level
  backends, so a stop and a start on the same port keep the objects (the outage tests rely on it).
* :class:`MotoS3Process`: moto's ``moto_server`` as its own process (stopped by its PID), for the
  benchmark: the server's CPU and GIL do not compete with the client being measured. A stop loses the
  objects (moto keeps them in memory).

Both can :meth:`stop` and :meth:`start` again on the same port (the outage tests).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from http_meter import MeteringProxy
    from olivine.datastores import Datastore

AZURITE_VERSION = "3.35.0"
#: The container (bucket) the test fixtures create; each test uses a fresh prefix in it.
CONTAINER = "olivine-tests"
#: Azurite's well-known development account (published in its documentation; not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


def cache_dir() -> Path:
    base = os.environ.get("OLIVINE_TEST_CACHE") or str(Path.home() / ".cache" / "olivine-tests")
    return Path(base)


def azurite_bin() -> Path:
    """The ``azurite-blob`` script, installing the pinned version with npm the first time."""
    folder = cache_dir() / f"azurite-{AZURITE_VERSION}"
    script = folder / "node_modules" / ".bin" / "azurite-blob"
    if not script.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("the azure tier needs Node.js and npm (to install azurite)")
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                npm,
                "install",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(folder),
                f"azurite@{AZURITE_VERSION}",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=600,
        )
    return script


class _OwnProcess:
    """A server this test session started as its own process (``proc``), stopped by its PID."""

    proc: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        """Stop the server (SIGTERM to its PID, SIGKILL after 10 s)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cpu_seconds(self) -> float:
        """User + system CPU seconds the server process has used so far."""
        assert self.proc is not None
        return proc_cpu_seconds(self.proc.pid)


class Azurite(_OwnProcess):
    """An Azurite blob server on 127.0.0.1 persisting to ``location``."""

    def __init__(self, location: Path, port: int | None = None) -> None:
        self.location = location
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{AZURITE_ACCOUNT}"

    def connection_string(self, endpoint: str | None = None) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={endpoint or self.endpoint};"
        )

    def start(self) -> Azurite:
        self.location.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(azurite_bin()),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(self.port),
            "--location",
            str(self.location),
            "--skipApiVersionCheck",
            "--disableTelemetry",
            "--disableProductStyleUrl",
            "--silent",
        ]
        log = open(self.location / "azurite.log", "ab")  # noqa: SIM115 (owned by the child)
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        wait_port(self.port)
        return self

    def create_container(self, name: str) -> None:
        from azure.storage.blob import BlobServiceClient

        client = BlobServiceClient.from_connection_string(self.connection_string())
        with client:
            client.create_container(name)


class MotoS3:
    """moto's S3 server on 127.0.0.1 (threads in this process)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.server: Any = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoS3:
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access-log line per request
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        wait_port(self.port)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def client(self, endpoint: str | None = None) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=endpoint or self.endpoint, region_name="us-east-1")

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)


class MotoS3Process(_OwnProcess, MotoS3):
    """moto's S3 server as its own process on 127.0.0.1, stopped by its PID."""

    def __init__(self, port: int | None = None) -> None:
        super().__init__(port)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> MotoS3Process:
        cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        wait_port(self.port)
        return self


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (and its reaped children) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


#: Environment for an S3 client talking to moto (moto accepts any credentials).
MOTO_ENV = {
    "AWS_ACCESS_KEY_ID": "testing-key-id",
    "AWS_SECRET_ACCESS_KEY": "testing-secret-value-0123456789",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def fresh_prefix() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def azure_url(prefix: str | None = None) -> str:
    return f"az://{CONTAINER}/{prefix or fresh_prefix()}"


def s3_url(prefix: str | None = None) -> str:
    return f"s3://{CONTAINER}/{prefix or fresh_prefix()}"


@dataclass
class Cloud:
    """One backend behind a metering proxy: ``open()`` gives a datastore on a fresh prefix."""

    name: str
    server: Azurite | MotoS3
    proxy: MeteringProxy
    url: str
    options: dict[str, Any]

    def open(self, **extra: Any) -> Datastore:
        from olivine.datastores import Datastore

        return Datastore.from_url(self.url, {**self.options, **extra})

    def restart_server(self, down_s: float) -> None:
        self.server.stop()
        time.sleep(down_s)
        self.server.start()
