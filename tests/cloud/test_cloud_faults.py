"""Object-store datastores under load and failure, against the real servers (Azurite, moto S3):

* a file >= 200 MB is exported with bounded memory (peak RSS of the exporting process measured),
  as blocks / multipart parts;
* transient errors (429, 500, 503, a reset connection), injected by a proxy in front of the server,
  are retried with backoff and leave the right content;
* an export interrupted by stopping the server completes once the server is back, with nothing lost
  or duplicated.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from cloud_servers import CONTAINER, Cloud
from http_meter import Fault
from olivine.datastores import Exporter, claim_export, verify
from olivine.datastores.index import read_index

MiB = 1 << 20
FAST_RETRY = {"retries": 10, "retry_backoff_s": 0.05, "retry_max_backoff_s": 1.0}


def _file(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        for _ in range(size // MiB):
            f.write(os.urandom(MiB))
        f.write(os.urandom(size % MiB))
    return path


def _is_put(method: str, path: str) -> bool:
    return method == "PUT"


@pytest.mark.parametrize("fault", [429, 500, 503, "reset"])
def test_object_store_retries_transient_errors(cloud: Cloud, tmp_path: Path, fault: int | str) -> None:
    ds = cloud.open(**FAST_RETRY)
    cloud.proxy.inject(Fault(fault, 2, _is_put))
    ds.put_bytes("small.json", b'{"a": 1}\n')
    assert cloud.proxy.pending_faults() == 0
    big = _file(tmp_path / "big.bin", 3 * ds.block_bytes + 12345)  # type: ignore[attr-defined]
    cloud.proxy.inject(Fault(fault, 3, _is_put))  # on block / part uploads and the commit
    entry = ds.put_file(big, "big.bin")
    assert cloud.proxy.pending_faults() == 0
    assert ds.read_bytes("small.json") == b'{"a": 1}\n'
    assert ds.hash_of("big.bin") == entry
    assert ds.walk_files("") == [("big.bin", big.stat().st_size), ("small.json", 9)]


def test_object_store_gives_up_after_its_retries_with_one_clear_error(cloud: Cloud) -> None:
    ds = cloud.open(retries=2, retry_backoff_s=0.01, retry_max_backoff_s=0.02)
    cloud.proxy.inject(Fault(503, 50, _is_put))
    with pytest.raises(Exception, match=r"put .*x\.txt failed") as info:
        ds.put_bytes("x.txt", b"x")
    assert "\n" not in str(info.value).splitlines()[0]


_RSS_PROBE = """
import json, re, sys
from datetime import datetime, timezone
from pathlib import Path
from olivine.datastores import Datastore, Exporter, claim_export

def kb(field):
    return int(re.search(field + r":\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1))

ds = Datastore.from_url(sys.argv[1], json.loads(sys.argv[2]))
layout = claim_export(ds, "big", datetime.now(timezone.utc))
Exporter(ds, layout).export_file(sys.argv[4], "output/warm.bin")  # the SDK's lazy imports and pools
Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
before = kb("VmRSS")
entry = Exporter(ds, layout).export_file(sys.argv[3], "output/model.bin")
print(json.dumps({"grown_kb": kb("VmHWM") - before, "size": entry.size,
                  "sha256": entry.sha256, "root": layout.root}))
"""


def _export_in_child(cloud: Cloud, url: str, local: Path, warm: Path) -> dict[str, Any]:
    """Export ``local`` from a new process and return how much its resident memory peaked above what it
    held just before that export (after its imports, its client and a first small export: Linux resets
    the peak through ``/proc/self/clear_refs``), with the entry's size, sha256 and the export root."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    out = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, url, json.dumps(cloud.options), str(local), str(warm)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_object_store_exports_200mb_file_with_bounded_memory(cloud: Cloud, tmp_path: Path) -> None:
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux /proc/self/clear_refs to measure the export's own peak memory")
    small = _file(tmp_path / "small.bin", MiB)
    big = _file(tmp_path / "big.bin", 200 * MiB + 4321)
    cloud.proxy.take()
    result = _export_in_child(cloud, cloud.url, big, small)
    meter = cloud.proxy.take()
    grown_mb = result["grown_kb"] / 1024
    # The upload's window of blocks in flight plus the block being read; far below the file's 200 MB.
    # Measured from just before this file's export, so the imports' own peak cannot hide it.
    assert grown_mb < 64, f"peak RSS grew {grown_mb:.0f} MB exporting a 200 MB file"
    assert result["size"] == big.stat().st_size
    ds = cloud.open()
    block = ds.block_bytes  # type: ignore[attr-defined]
    # Staged as blocks / parts, not one request.
    assert meter.by_method.get("PUT", 0) >= big.stat().st_size // block
    assert ds.hash_of(f"{result['root']}/output/model.bin").sha256 == result["sha256"]


def test_object_store_export_survives_server_restart(cloud: Cloud, tmp_path: Path) -> None:
    src = tmp_path / "tree"
    _file(src / "cache" / "runs" / "a" / "model.onnx", 48 * MiB + 7)
    for i in range(20):
        _file(src / "cache" / "runs" / f"r{i:02d}" / "run.json", 200 + i)
    _file(src / "output" / "model.onnx", 3 * MiB)
    ds = cloud.open(retries=30, retry_backoff_s=0.2, retry_max_backoff_s=1.0)
    layout = claim_export(ds, "wf", datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc))
    exporter = Exporter(ds, layout)
    cloud.proxy.take()
    errors: list[BaseException] = []

    def export() -> None:
        try:
            exporter.export_tree(src / "cache", "cache")
            exporter.export_tree(src / "output", "output")
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=export)
    worker.start()
    _wait(lambda: cloud.proxy.take().bytes_up > 0 or _sleep_false(0.02), timeout_s=30)
    time.sleep(0.3)  # mid-upload
    cloud.restart_server(down_s=2.0)
    worker.join(timeout=300)
    assert not worker.is_alive()
    assert errors == []
    manifest = exporter.finalize({"status": "succeeded"})
    assert manifest["totals"]["files"] == 22
    assert verify(ds, layout) == []  # every file there, right size and sha256, nothing unexpected
    stored = [rel for rel, _ in ds.walk_files(layout.root) if "/.olivine/" not in f"/{rel}"]
    assert len(stored) == len(set(stored))
    assert sorted(read_index(ds, layout)) == sorted(e["path"] for e in manifest["files"])
    if cloud.name == "s3":
        client = cloud.server.client()  # type: ignore[union-attr]
        assert client.list_multipart_uploads(Bucket=CONTAINER).get("Uploads", []) == []


def _sleep_false(seconds: float) -> bool:
    time.sleep(seconds)
    return False


def _wait(condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
