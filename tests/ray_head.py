"""A real Ray cluster for tests and benchmarks: a head (and optionally worker nodes) started from this venv
on 127.0.0.1 (free ports, usage stats off, token auth off unless asked, a capped object store), each
stopped by its PID.

Never ``ray stop``: it would end every Ray process on the machine, other people's included.

Worker nodes: ``ray start --address=...`` refuses to join unless ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1``,
and with that setting Ray looks for the machine's external address (FIELD-NOTES: it then binds beyond
loopback). So a cluster with worker nodes runs in a private network namespace (``netns=True``: the head
is started under ``unshare -n``, nodes and clients join it with ``nsenter``), where loopback is the only
interface: nothing it binds is reachable from outside, whatever Ray decides. Needs root (or
CAP_SYS_ADMIN); :func:`netns_available` says whether this machine allows it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

_START_TIMEOUT_S = 120.0

# Read by Ray when it is first imported: a driver in this process (a spread search) must also stay on
# loopback, or Ray rewrites "127.0.0.1:<port>" to the external address and cannot reach the head.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def netns_available() -> str | None:
    """None when private network namespaces work here (``unshare -n``), else why not."""
    if not (shutil.which("unshare") and shutil.which("nsenter") and shutil.which("ip")):
        return "unshare, nsenter or ip is not installed"
    done = subprocess.run(
        ["unshare", "-n", "--", "ip", "link", "set", "lo", "up"], capture_output=True, text=True, check=False
    )
    return None if done.returncode == 0 else f"unshare -n is not allowed here: {done.stderr.strip()}"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to a ``ray start --block`` process (it stops its children), SIGKILL to its group after 30 s."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@dataclass
class RayNode:
    """A worker node (``ray start --address=<head> --block``) joined to a :class:`RayHead`."""

    proc: subprocess.Popen[bytes]
    temp_dir: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        _stop(self.proc)


@dataclass
class RayHead:
    """A head process (``ray start --head --block``) and the ports it keeps across restarts.

    ``auth_token``: start the cluster with token authentication (``RAY_AUTH_MODE=token``, the token in the
    head's ``RAY_AUTH_TOKEN``); clients then need the same token. ``resources``: custom resources of the
    head node (to steer work onto or off it). ``netns``: run the cluster in its own network namespace
    (required for :meth:`add_node`; clients then run through :meth:`in_netns`). ``cpus``: the CPU ids the
    head node's processes (its raylet, its task processes, GCS, dashboard) may run on (``taskset``; None:
    any), as a machine of its own would have.
    """

    temp_dir: Path
    num_cpus: int = 2
    auth_token: str | None = None
    resources: dict[str, float] = field(default_factory=dict)
    netns: bool = False
    cpus: tuple[int, ...] | None = None
    gcs_port: int = field(default_factory=free_port)
    dashboard_port: int = field(default_factory=free_port)
    # Ray's defaults (52365, 10001) would collide with any other head on this machine.
    agent_port: int = field(default_factory=free_port)
    client_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    nodes: list[RayNode] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def gcs_address(self) -> str:
        """What a driver passes to ``ray.init(address=...)``."""
        return f"127.0.0.1:{self.gcs_port}"

    def env(self) -> dict[str, str]:
        """The environment of this cluster's ``ray start`` processes."""
        env = {
            **os.environ,
            # Without it Ray binds to the external interface even when told 127.0.0.1.
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
            # Explicit: a token file left by an earlier ray.init() would turn token auth on.
            "RAY_AUTH_MODE": "token" if self.auth_token else "disabled",
            "RAY_USAGE_STATS_ENABLED": "0",
            # Jobs run `python` from the head's PATH: this venv's, which has Olivine.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        env.pop("RAY_AUTH_TOKEN", None)
        env.pop("RAY_AUTH_TOKEN_PATH", None)
        if self.auth_token:
            env["RAY_AUTH_TOKEN"] = self.auth_token
        return env

    def _common_args(
        self, temp_dir: Path, num_cpus: int, resources: dict[str, float], ip: str = "127.0.0.1"
    ) -> list[str]:
        args = [
            "--block",
            f"--node-ip-address={ip}",
            f"--num-cpus={num_cpus}",
            "--object-store-memory=300000000",
            f"--temp-dir={temp_dir}",
            "--disable-usage-stats",
        ]
        return args + ([f"--resources={json.dumps(resources)}"] if resources else [])

    def in_netns(self, command: list[str]) -> list[str]:
        """``command`` run in the cluster's network namespace (as is, without ``netns``)."""
        if not self.netns:
            return command
        assert self.proc is not None, "the head is not running"
        return ["nsenter", f"--net=/proc/{self.proc.pid}/ns/net", "--", *command]

    def _popen(
        self,
        args: list[str],
        log_name: str,
        *,
        head: bool = True,
        env: dict[str, str] | None = None,
        cpus: tuple[int, ...] | None = None,
    ) -> subprocess.Popen[bytes]:
        command = [str(Path(sys.executable).with_name("ray")), "start", *args]
        if cpus is not None:  # the node's processes inherit it (taskset execs: the PID stays `ray start`'s)
            command = ["taskset", "-c", ",".join(map(str, cpus)), *command]
        if self.netns and head:
            # The head creates the namespace: loopback up, then exec (its PID stays the `ray start` one).
            command = ["unshare", "-n", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *command]
        elif self.netns:
            command = self.in_netns(command)
        with (self.temp_dir / log_name).open("ab") as log:
            return subprocess.Popen(
                command,
                env=env or self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def start(self) -> None:
        self.proc = self._popen(
            [
                "--head",
                f"--port={self.gcs_port}",
                "--dashboard-host=127.0.0.1",
                f"--dashboard-port={self.dashboard_port}",
                f"--dashboard-agent-listen-port={self.agent_port}",
                f"--ray-client-server-port={self.client_port}",
                "--include-dashboard=true",
                *self._common_args(self.temp_dir / "ray", self.num_cpus, self.resources),
            ],
            "head.log",
            cpus=self.cpus,
        )
        self._wait(lambda: self.get("/api/jobs/") is not None, self.proc, "head.log")

    def add_node(
        self,
        num_cpus: int = 1,
        resources: dict[str, float] | None = None,
        cpus: tuple[int, ...] | None = None,
    ) -> RayNode:
        """Join a worker node and wait until the head counts it alive.

        Each node has its own loopback address (127.0.0.2, 127.0.0.3...: Ray finds a node's raylet by its
        address, so two nodes on 127.0.0.1 get each other's session folder, e.g. the dashboard agent
        serves job logs from the wrong one) and its own temp folder (a shared one would share the
        extracted ``working_dir`` of a job between nodes, and one node's clean-up deletes the other's).
        ``cpus``: the CPU ids the node's processes may run on (as for the head)."""
        if not self.netns:
            raise RuntimeError(
                "a worker node needs RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1, which may bind beyond loopback: "
                "start the cluster with netns=True"
            )
        index = len(self.nodes) + 1
        temp_dir = self.temp_dir / f"node{index}"
        proc = self._popen(
            [
                f"--address={self.gcs_address}",
                f"--dashboard-agent-listen-port={free_port()}",
                *self._common_args(temp_dir, num_cpus, resources or {}, ip=f"127.0.0.{index + 1}"),
            ],
            f"node{index}.log",
            head=False,
            env={**self.env(), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1"},
            cpus=cpus,
        )
        node = RayNode(proc, temp_dir)
        self.nodes.append(node)
        want = 1 + len(self.nodes)
        self._wait(lambda: len(self.alive_nodes()) >= want, proc, f"node{index}.log")
        return node

    def alive_nodes(self) -> list[dict[str, object]]:
        """The head's view of its nodes (the dashboard's state API), alive ones only."""
        data = self.get("/api/v0/nodes?limit=100")
        if not isinstance(data, dict):
            return []
        result = data.get("data", {}).get("result", {}).get("result", [])
        return [n for n in result if n.get("state") == "ALIVE"]

    def get(self, path: str) -> object | None:
        """A GET on the dashboard with this cluster's token (None: no answer yet)."""
        if self.netns:  # from inside the namespace: this process cannot reach it
            if self.proc is None or self.proc.poll() is not None:
                return None
            code = (
                "import sys, urllib.request; r = urllib.request.Request(sys.argv[1]);"
                " import os; t = os.environ.get('OLV_DASHBOARD_TOKEN');"
                " t and r.add_header('Authorization', 'Bearer ' + t);"
                " sys.stdout.buffer.write(urllib.request.urlopen(r, timeout=10).read())"
            )
            command = [sys.executable, "-c", code, self.address + path]
            env = {**os.environ, "OLV_DASHBOARD_TOKEN": self.auth_token or ""}  # not in argv: ps shows it
            done = subprocess.run(self.in_netns(command), capture_output=True, check=False, env=env)
            try:
                return json.loads(done.stdout) if done.returncode == 0 else None
            except ValueError:
                return None
        request = urllib.request.Request(self.address + path)
        if self.auth_token:
            request.add_header("Authorization", f"Bearer {self.auth_token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read())
        except (OSError, ValueError):
            return None

    def _wait(self, ready: Callable[[], bool], proc: subprocess.Popen[bytes], log_name: str) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not ready():
            if proc.poll() is not None:
                raise RuntimeError(f"ray start exited ({proc.returncode}); see {self.temp_dir}/{log_name}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the Ray cluster was not ready in {_START_TIMEOUT_S:.0f}s")
            time.sleep(0.5)

    def stop(self) -> None:
        """Stop the worker nodes, then the head, each by its own PID."""
        for node in self.nodes:
            node.stop()
        self.nodes = []
        proc, self.proc = self.proc, None
        if proc is not None:
            _stop(proc)

    def restart(self) -> None:
        self.stop()
        self.start()
