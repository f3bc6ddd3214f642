"""A real Ray head for tests and benchmarks: started from this venv on 127.0.0.1 (free ports, usage stats
off, token auth off, a capped object store), stopped by its PID.

Never ``ray stop``: it would end every Ray process on the machine, other people's included.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
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


@dataclass
class RayHead:
    """A head process (``ray start --head --block``) and the ports it keeps across restarts."""

    temp_dir: Path
    num_cpus: int = 2
    gcs_port: int = field(default_factory=free_port)
    dashboard_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def gcs_address(self) -> str:
        """What a driver passes to ``ray.init(address=...)``."""
        return f"127.0.0.1:{self.gcs_port}"

    def start(self) -> None:
        from ray.job_submission import JobSubmissionClient

        ray_cli = Path(sys.executable).with_name("ray")
        env = {
            **os.environ,
            # Without it Ray binds to the external interface even when told 127.0.0.1.
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
            # A token file left by an earlier ray.init() would turn token auth on.
            "RAY_AUTH_MODE": "disabled",
            "RAY_USAGE_STATS_ENABLED": "0",
            # Jobs run `python` from the head's PATH: this venv's, which has Olivine.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        log = (self.temp_dir / "head.log").open("ab")
        self.proc = subprocess.Popen(
            [
                str(ray_cli),
                "start",
                "--head",
                "--block",
                f"--port={self.gcs_port}",
                "--node-ip-address=127.0.0.1",
                "--dashboard-host=127.0.0.1",
                f"--dashboard-port={self.dashboard_port}",
                "--include-dashboard=true",
                f"--num-cpus={self.num_cpus}",
                "--object-store-memory=300000000",
                f"--temp-dir={self.temp_dir / 'ray'}",
                "--disable-usage-stats",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"the Ray head exited ({self.proc.returncode}); see {self.temp_dir}/head.log"
                )
            try:
                JobSubmissionClient(self.address).list_jobs()
                return
            except Exception:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"the Ray head did not answer in {_START_TIMEOUT_S:.0f}s") from None
                time.sleep(0.5)

    def stop(self) -> None:
        """SIGTERM to the head's own process (it stops its children), SIGKILL to its group after 30 s."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()
