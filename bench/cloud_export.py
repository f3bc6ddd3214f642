"""Cloud datastores: export throughput vs the SDKs' own uploads, and requests per operation.

Usage: ``python bench/cloud_export.py [--mb 200] [--rounds 3] [--backends azure,s3]``

Starts Azurite (npm ``azurite@3.35.0``, cached) and moto's S3 server on 127.0.0.1, each as its own
process (so the server's CPU, and for moto its GIL, is not the measured client's; both stopped by PID at
the end), then for each backend:

1. **Throughput** (direct connection, no proxy): the same tree of files (like a workflow cache: two
   large models, medium files, many small records; ``--mb`` in all) exported by Olivine's
   :class:`~olivine.datastores.Exporter` (sha256 of every file, index, manifest, asset) vs uploaded by the
   SDK itself: ``BlobClient.upload_blob`` (azure-storage-blob) / ``upload_file`` (boto3), with the same
   number of files in flight as the exporter (8) and each SDK's default per-file settings. Olivine is
   timed twice: on cold files (every file hashed while it is exported) and on the same files with their
   sha256 recorded in sidecars, as a worker's cache has them (the engine hashes at commit). Rounds are
   interleaved (each of the three goes first in turn); medians; goal: Olivine >= 0.8x the SDK. The
   client's CPU seconds (this process, every thread) and the server's are printed per variant.
2. **Requests and bytes** (through a counting proxy): per export (cache and output of the tree, then
   finalize), per status read, per listing (a workflow's exports, the asset catalog), per fetch of
   the output (verified against the manifest).

Prints a table; ``--json OUT`` also writes the raw numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from cloud_servers import AZURITE_ACCOUNT, CONTAINER, MOTO_ENV, Azurite, MotoS3Process
from http_meter import MeteringProxy
from olivine.datastores import Datastore, Exporter, claim_export, fetch, list_exports
from olivine.datastores.assets import catalog
from olivine.digests import record_folder

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
FILES_IN_FLIGHT = 8


def plan_files(total_mb: int) -> list[tuple[str, int]]:
    """60% in 2 large files, 30% in 10 medium, 10% in 100 small: like a workflow cache."""
    total = total_mb << 20
    plan = [(2, int(total * 0.6) // 2), (10, int(total * 0.3) // 10), (100, int(total * 0.1) // 100)]
    return [
        (f"{'cache/runs' if g < 2 else 'cache/evaluations'}/g{g}/f{i}.bin", size)
        for g, (count, size) in enumerate(plan)
        for i in range(count)
    ] + [("output/model/model.onnx", 1 << 20), ("output/metrics.json", 300)]


def make_tree(root: Path, files: list[tuple[str, int]]) -> None:
    for rel, size in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            left = size
            while left:
                n = min(left, 1 << 20)
                f.write(os.urandom(n))
                left -= n


def olivine_export(ds: Datastore, tree: Path, second: int) -> None:
    layout = claim_export(ds, "bench", T0 + timedelta(seconds=second))
    exporter = Exporter(ds, layout)
    exporter.export_tree(tree / "cache", "cache")
    exporter.export_tree(tree / "output", "output")
    exporter.finalize({"status": {"state": "SUCCEEDED"}})


def sdk_upload(upload_one: Callable[[Path, str], None], tree: Path, prefix: str) -> None:
    files = sorted(p for p in tree.rglob("*") if p.is_file())
    with ThreadPoolExecutor(FILES_IN_FLIGHT) as pool:
        list(pool.map(lambda p: upload_one(p, f"{prefix}/{p.relative_to(tree).as_posix()}"), files))


def azure_uploader(connection_string: str) -> Callable[[Path, str], None]:
    from azure.storage.blob import BlobServiceClient

    container = BlobServiceClient.from_connection_string(connection_string).get_container_client(CONTAINER)

    def upload(path: Path, name: str) -> None:
        with open(path, "rb") as f:
            container.upload_blob(name, f, overwrite=True)

    return upload


def s3_uploader(endpoint: str) -> Callable[[Path, str], None]:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")

    def upload(path: Path, name: str) -> None:
        client.upload_file(str(path), CONTAINER, name)

    return upload


def _client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
    return usage.ru_utime + usage.ru_stime


def throughput(
    open_ds: Callable[[str], Datastore],
    upload: Callable[[Path, str], None],
    server_cpu: Callable[[], float],
    tree: Path,
    recorded_tree: Path,
    mb: float,
    rounds: int,
) -> dict[str, Any]:
    variants = ("sdk", "olivine", "olivine_recorded")
    times: dict[str, list[float]] = {v: [] for v in variants}
    client: dict[str, list[float]] = {v: [] for v in variants}
    server: dict[str, list[float]] = {v: [] for v in variants}
    for r in range(rounds):
        order = list(variants)
        order = order[r % 3 :] + order[: r % 3]  # each first, second, third in turn
        for which in order:
            if which == "sdk":
                cpu, srv, start = _client_cpu(), server_cpu(), time.perf_counter()
                sdk_upload(upload, tree, f"sdk-{r}")
            else:
                ds = open_ds(f"{which}-{r}")  # like the SDK client: made before the clock starts
                cpu, srv, start = _client_cpu(), server_cpu(), time.perf_counter()
                olivine_export(ds, tree if which == "olivine" else recorded_tree, r)
            times[which].append(time.perf_counter() - start)
            client[which].append(_client_cpu() - cpu)
            server[which].append(server_cpu() - srv)
    med = {v: statistics.median(times[v]) for v in variants}
    return {
        "olivine_mb_s": mb / med["olivine"],
        "olivine_recorded_mb_s": mb / med["olivine_recorded"],
        "sdk_mb_s": mb / med["sdk"],
        "ratio": med["sdk"] / med["olivine"],
        "ratio_recorded": med["sdk"] / med["olivine_recorded"],
        "seconds": times,
        "client_cpu_s": client,
        "server_cpu_s": server,
        "median_client_cpu_s": {v: statistics.median(client[v]) for v in variants},
        "median_server_cpu_s": {v: statistics.median(server[v]) for v in variants},
    }


def requests(
    open_ds: Callable[[str], Datastore], proxy: MeteringProxy, tree: Path, tmp: Path
) -> dict[str, Any]:
    ds = open_ds("counted")
    proxy.take()
    layout = claim_export(ds, "bench", T0)
    exporter = Exporter(ds, layout)
    exporter.export_tree(tree / "cache", "cache")
    exporter.export_tree(tree / "output", "output")
    exporter.write_status({"state": "SUCCEEDED"})
    exporter.finalize({"status": {"state": "SUCCEEDED"}})
    out: dict[str, Any] = {"export": proxy.take()}
    layout.read_status()
    out["status"] = proxy.take()
    list_exports(ds, "bench")
    out["list exports"] = proxy.take()
    catalog(ds)
    out["list assets"] = proxy.take()
    fetch(ds, layout, "output", tmp / "fetched")
    out["fetch output"] = proxy.take()
    return {
        k: {"requests": m.requests, "bytes_up": m.bytes_up, "bytes_down": m.bytes_down}
        for k, m in out.items()
    }


def run_backend(
    name: str, work: Path, tree: Path, recorded_tree: Path, mb: float, rounds: int
) -> dict[str, Any]:
    if name == "azure":
        server: Azurite | MotoS3Process = Azurite(work / "azurite").start()
        assert isinstance(server, Azurite)
        server.create_container(CONTAINER)
        proxy = MeteringProxy(server.port).start()
        direct = server.connection_string()
        counted = server.connection_string(f"http://127.0.0.1:{proxy.port}/{AZURITE_ACCOUNT}")
        upload = azure_uploader(direct)

        def open_ds(prefix: str, cs: str = direct) -> Datastore:
            ds = Datastore.from_url(f"az://{CONTAINER}/{prefix}", {"connection_string": cs})
            ds.connect()  # type: ignore[attr-defined]  (its write client, made before the clock as the SDK's)
            return ds

        def open_counted(prefix: str) -> Datastore:
            return open_ds(prefix, counted)
    else:
        os.environ.update(MOTO_ENV)
        server = MotoS3Process().start()  # its own process: its CPU is not the client's
        server.create_bucket(CONTAINER)
        proxy = MeteringProxy(server.port).start()
        upload = s3_uploader(server.endpoint)

        def open_ds(prefix: str, endpoint: str = server.endpoint) -> Datastore:
            ds = Datastore.from_url(f"s3://{CONTAINER}/{prefix}", {"endpoint_url": endpoint})
            # The datastore makes its botocore clients on first use (~0.3 s of loading service models);
            # the SDK baseline's boto3 client is made before its clock starts: so are these.
            ds.connect()  # type: ignore[attr-defined]
            return ds

        def open_counted(prefix: str) -> Datastore:
            return open_ds(prefix, f"http://127.0.0.1:{proxy.port}")

    try:
        return {
            "throughput": throughput(open_ds, upload, server.cpu_seconds, tree, recorded_tree, mb, rounds),
            "requests": requests(open_counted, proxy, tree, work / name),
        }
    finally:
        proxy.stop()
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default="azure,s3")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="olivine-cloud-bench-") as tmp:
        work = Path(tmp)
        files = plan_files(args.mb)
        make_tree(work / "tree", files)
        # The same files as a worker exports its cache: sha256 recorded when written (sidecars).
        shutil.copytree(work / "tree", work / "recorded")
        for part in ("cache", "output"):
            record_folder(work / "recorded" / part)
        mb = sum(size for _, size in files) / (1 << 20)
        print(f"tree: {len(files)} files, {mb:.0f} MB")
        for backend in args.backends.split(","):
            results[backend] = run_backend(backend, work, work / "tree", work / "recorded", mb, args.rounds)
    print(f"load average after: {os.getloadavg()}")
    print()
    print(
        "| backend | SDK upload MB/s | Olivine export MB/s (sha256 at export) | ratio (goal >= 0.8) "
        "| Olivine export MB/s (sha256 recorded) | ratio |"
    )
    print("|---|---|---|---|---|---|")
    for backend, res in results.items():
        t = res["throughput"]
        print(
            f"| {backend} | {t['sdk_mb_s']:.1f} | {t['olivine_mb_s']:.1f} | {t['ratio']:.2f}x "
            f"| {t['olivine_recorded_mb_s']:.1f} | {t['ratio_recorded']:.2f}x |"
        )
    print()
    print("| backend | variant | seconds per round | median client CPU s | median server CPU s |")
    print("|---|---|---|---|---|")
    for backend, res in results.items():
        t = res["throughput"]
        for v, secs in t["seconds"].items():
            print(
                f"| {backend} | {v} | {'/'.join(f'{x:.2f}' for x in secs)} "
                f"| {t['median_client_cpu_s'][v]:.2f} | {t['median_server_cpu_s'][v]:.2f} |"
            )
    print()
    print("| backend | operation | requests | bytes up | bytes down |")
    print("|---|---|---|---|---|")
    for backend, res in results.items():
        for op, m in res["requests"].items():
            print(f"| {backend} | {op} | {m['requests']} | {m['bytes_up']:,} | {m['bytes_down']:,} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
