"""Search over Ray: the MiniLM search's candidates per minute on a Ray cluster of 1 worker vs 2 workers of 1
CPU each, the same config (``search_workers`` 2, 1 CPU per candidate task), and the best model of each.

Clusters (``--cluster``), started by this script on this machine and stopped by their PIDs; the timer
starts once every node is registered alive (a search uses a running cluster):

- ``nodes`` (the default; the issue's "workers of 1 CPU each"): one ``ray start`` node per worker, each
  with 1 CPU and its processes pinned to a CPU of its own with ``taskset`` (the head on CPU 0, the worker
  node on CPU 1), in a private network namespace as ``tests/on_ray/test_ray_multinode.py`` runs them (a
  worker node binds beyond loopback otherwise; each run checks with ``ss -ltnp`` that nothing of the
  cluster listens in this machine's own namespace). A task there holds its node's one CPU, so under
  ``search_timing`` ``auto`` it times its candidate itself (:mod:`olivine.engine.ray_executor`).
- ``slots``: one node with 1 CPU vs 2 CPUs for tasks, unpinned (two task slots of one node: its
  candidates are timed apart under ``auto``).

The search's driver runs :class:`olivine.engine.ray_executor.RayExecutor` in a process of its own (in the
cluster's namespace for ``nodes``), unpinned. Modes: ``cached``, the candidates' work only (a warm-up
run, not timed, caches the input model's evaluation and the shared prefix, conversion + transformer
optimization, and each measured run starts from a fresh copy of that cache); ``whole``, the whole search
from an empty cache; ``warm``, ``cached`` with the task processes started and their imports done before
the timer; ``shared``, ``cached`` with ``search_timing`` ``in_place``; ``apart``, ``cached`` with
``search_timing`` ``apart`` (every candidate timed alone after the batch's untimed work: the two-phase
design, for comparison). Each run realises the first ``--candidates`` points of
``examples/minilm-search`` (sequential sampler). Rounds interleave the clusters (alternating which goes
first); medians are reported, with the load average before and after each run (the machine is shared).

``--ceiling`` measures what this machine allows for this workload: the same search, serial (no Ray), in
one process pinned to one CPU alone, vs two such processes at once, one per CPU (each with its own cache
copy, each doing every candidate): the candidates-per-minute ratio two CPUs can give here, with the
latencies each process measured (what a neighbour on the other CPU does to them).

The report lists each candidate's timed latencies side by side per mode and cluster.

    flock /work/.bench.lock .venv/bin/python bench/ray_search.py [--rounds 1] [--candidates 8] \
        [--modes cached,whole,warm,shared,apart] [--cluster nodes|slots] [--ceiling] [--doc]
    .venv/bin/python bench/ray_search.py --render bench/results/ray-search-<timestamp>.json [--doc]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from common import (
    EXAMPLE,
    REPO,
    RESULTS,
    WORK,
    load_average,
    machine_info,
    median,
    prepare_workdir,
    write_doc_block,
)

from olivine.engine.affinity import LOCK_DIR_ENV
from ray_head import RayHead  # sets Ray's loopback environment before Ray is imported

SEARCH_EXAMPLE = REPO / "examples" / "minilm-search"
GOAL = 1.6
_SETTLE_S = 2.0  # after the node registers: its agents finish starting before the timer starts


def _config(work: Path, cache: Path, out: Path, candidates: int | None, name: str = "bench.json") -> Path:
    """The example's search config: cache and output here, no PNG, the first ``candidates`` points (None:
    the warm-up, which keeps only the shared prefix), and serial when no executor is given (the
    example's local system asks for a local pool of 2 workers)."""
    data: dict[str, Any] = json.loads((work / "minilm-search" / "config.json").read_text())
    data["systems"]["local_system"]["search_workers"] = 0
    engine = data["engine"]
    engine.update(cache_dir=str(cache), output_dir=str(out), plot_pareto_frontier=False)
    if candidates is None:
        data["passes"].pop("quantization")
    else:
        engine["search_strategy"] = {**engine["search_strategy"], "max_iter": candidates}
    path = work / "minilm-search" / ("warm.json" if candidates is None else name)
    path.write_text(json.dumps(data, indent=2))
    return path


def _warm_task() -> int:
    """What a task process imports before its first candidate (the example's tokenizer needs
    transformers); ~10 s on one CPU, once per worker process."""
    import os

    import onnxruntime  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401

    import olivine.engine.evaluation
    import olivine.engine.task_work  # noqa: F401

    time.sleep(1.0)  # overlap with the other slots' warm-up, so each lands on its own worker
    return os.getpid()


def _warm_workers(address: str, slots: int) -> float:
    """Connect this process to the cluster (so the executor reuses the connection and its workers)
    and start ``slots`` task processes with the imports done; returns the seconds it took."""
    import ray

    start = time.perf_counter()
    ray.init(address=address, namespace="olivine", log_to_driver=False, configure_logging=False)
    warm = ray.remote(_warm_task).options(num_cpus=1)
    pids = ray.get([warm.remote() for _ in range(slots)])
    if len(set(pids)) != slots:
        print(f"warm-up: {slots} slots but {len(set(pids))} worker process(es)", flush=True)
    return time.perf_counter() - start


def _run(config: Path, address: str | None, warm_slots: int = 0, timing: str = "auto") -> tuple[float, Path]:
    """One search (in this process: a child of the bench, see :func:`_drive`); the seconds from the start
    of ``run_workflow`` (connecting to the cluster included) and the footprint's path."""
    from olivine.engine.executor import SpreadSettings
    from olivine.engine.ray_executor import RayExecutor
    from olivine.engine.resolve import load_workflow
    from olivine.engine.run import run_workflow

    workflow = load_workflow(config)
    settings = SpreadSettings(workers=2, num_cpus=1, address=address, timing=timing)  # type: ignore[arg-type]
    executor = RayExecutor(settings) if address else None
    if address and warm_slots:
        _warm_workers(address, warm_slots)
    start = time.perf_counter()
    try:
        result = run_workflow(workflow, executor=executor)
    finally:
        if warm_slots:
            import ray

            ray.shutdown()
    return time.perf_counter() - start, result.output_dir / "footprint.json"


def _child(spec: str) -> int:
    """``--child``: run one search as :func:`_drive` asks and print its seconds and footprint (JSON)."""
    job = json.loads(spec)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    elapsed, footprint = _run(
        Path(job["config"]), job["address"], job.get("warm", 0), job.get("timing", "auto")
    )
    print(json.dumps({"seconds": elapsed, "footprint": str(footprint)}), flush=True)
    return 0


def _drive(
    config: Path, address: str | None, *, warm: int = 0, timing: str = "auto", prefix: list[str] | None = None
) -> subprocess.Popen[str]:
    """Start a child process (``--child``) that runs one search; ``prefix``: what runs it (``nsenter`` into
    the cluster's namespace, ``taskset``). The driver is a process of its own in every mode, so each
    mode pays the same for it."""
    spec = json.dumps({"config": str(config), "address": address, "warm": warm, "timing": timing})
    command = [*(prefix or []), sys.executable, str(Path(__file__).resolve()), "--child", spec]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


def _finish(child: subprocess.Popen[str]) -> tuple[float, dict[str, Any]]:
    out, _ = child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"the search's process failed ({child.returncode})")
    done = json.loads(out.strip().splitlines()[-1])
    footprint: dict[str, Any] = json.loads(Path(done["footprint"]).read_text())
    return float(done["seconds"]), footprint


def _timed(candidate: dict[str, Any]) -> dict[str, list[float | None]]:
    """The candidate's timed metrics (those measured in rounds): key -> [value, spread]."""
    return {
        key: [metric["value"], metric.get("spread")]
        for key, metric in (candidate.get("metrics") or {}).items()
        if metric.get("rounds") is not None
    }


def _tasks(done: list[dict[str, Any]]) -> dict[str, float] | None:
    """From the candidates' ``ran_on``: the candidate tasks' summed seconds (their chains and untimed
    metrics), the timing tasks' summed seconds (``timed``: each candidate's timed metrics, alone), the
    span from the first start to the last end, and the first task of each task process (CPU) that paid
    its process's start-up."""
    ran = [c["ran_on"] for c in done if c.get("ran_on")]
    if not ran:
        return None
    timed = [r["timed"] for r in ran if r.get("timed")]
    first: dict[str, dict[str, Any]] = {}
    for where in sorted(ran, key=lambda r: r["started"]):
        first.setdefault(",".join(map(str, where["cpus"])), where)
    every = ran + timed
    return {
        "sum": round(sum(r["ended"] - r["started"] for r in ran), 1),
        "cpu": round(sum(r.get("cpu_s", 0.0) for r in ran), 1),  # the candidate tasks' CPU seconds
        "timed": round(sum(t["ended"] - t["started"] for t in timed), 1),
        "span": round(max(r["ended"] for r in every) - min(r["started"] for r in every), 1),
        "first": round(max(r["ended"] - r["started"] for r in first.values()), 1),
    }


def _settled(head: RayHead) -> None:
    """Wait until the fresh cluster's head node is registered alive and its start-up work is over: the
    dashboard answers seconds before the node registers, and a driver's ``ray.init`` meanwhile waits for
    it (a cluster's start-up is not the search's time; a search uses a running cluster)."""
    assert head.proc is not None
    head._wait(lambda: len(head.alive_nodes()) >= 1, head.proc, "head.log")
    time.sleep(_SETTLE_S)


def _tree(root: int) -> set[int]:
    """``root`` and its descendants (from /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found, grew = {root}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in found} - found
        found |= more
        grew = bool(more)
    return found


def _outside_listeners(head: RayHead) -> list[str]:
    """Sockets that the cluster's processes listen on in this machine's own network namespace (`ss -ltnp`;
    expected: none, the cluster lives in its namespace where loopback is the only interface)."""
    assert head.proc is not None
    pids = _tree(head.proc.pid).union(*(_tree(node.pid) for node in head.nodes))
    lines = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout.splitlines()
    return [line.split()[3] for line in lines if any(f"pid={pid}," in line for pid in pids)]


def _cluster(temp: Path, cpus: int, kind: str) -> RayHead:
    """A started cluster with ``cpus`` CPUs for tasks: ``nodes``, one node per CPU (the head, then worker
    nodes), each node's processes pinned to its own CPU (``taskset``), in a private network namespace;
    ``slots``, one node with ``cpus`` CPUs, unpinned."""
    if kind == "slots":
        head = RayHead(temp, num_cpus=cpus)
        head.start()
        return head
    head = RayHead(temp, num_cpus=1, netns=True, cpus=(0,))
    head.start()
    try:
        for cpu in range(1, cpus):
            head.add_node(num_cpus=1, cpus=(cpu,))
    except BaseException:
        head.stop()
        raise
    return head


_TIMING = {"shared": "in_place", "apart": "apart"}  # other modes: the default ("auto")


def _measure(work: Path, warm: Path, cpus: int, candidates: int, mode: str, kind: str) -> dict[str, Any]:
    cache, out = work / f"cache-{cpus}", work / f"out-{cpus}"
    for folder in (cache, out):
        shutil.rmtree(folder, ignore_errors=True)
    if mode != "whole":
        shutil.copytree(warm, cache)
    config = _config(work, cache, out, candidates)
    temp = Path(tempfile.mkdtemp(prefix="olv-ray-", dir="/tmp"))  # short: Ray's socket paths
    head = _cluster(temp, cpus, kind)
    try:
        _settled(head)
        outside = _outside_listeners(head) if kind == "nodes" else None
        load_before = load_average()
        child = _drive(
            config,
            head.gcs_address,
            warm=cpus if mode == "warm" else 0,
            timing=_TIMING.get(mode, "auto"),
            prefix=head.in_netns([]),
        )
        elapsed, footprint = _finish(child)
        load_after = load_average()
    finally:
        head.stop()
        shutil.rmtree(temp, ignore_errors=True)
    row = _row(footprint, elapsed, load_before, load_after)
    return {"cpus": cpus, "mode": mode, "cluster": kind, "outside_listeners": outside, **row}


def _row(
    footprint: dict[str, Any], elapsed: float, load_before: list[float], load_after: list[float]
) -> dict[str, Any]:
    done = footprint["candidates"]
    best = next((c for c in done if c["id"] == footprint["best"]), None)
    where = footprint["input"].get("ran_on")
    starts = [c["ran_on"]["started"] for c in done if c.get("ran_on")]
    before = None
    if where and starts:  # the input model's task, and when the first candidate started (from its start)
        before = [round(where["ended"] - where["started"], 1), round(min(starts) - where["started"], 1)]
    return {
        "seconds": round(elapsed, 1),
        "candidates": len(done),
        "per_minute": round(len(done) / (elapsed / 60), 2),
        "statuses": [c["status"] for c in done],
        "best": footprint["best"],
        "best_model_id": best["model_id"] if best else None,
        "outline": [[c["id"], c["model_id"], c["status"]] for c in done],
        "timed": {c["id"]: _timed(c) for c in done if _timed(c)},
        "tasks": _tasks(done),
        "before_candidates": before,
        "ran_on": {c["id"]: c.get("ran_on") for c in done},
        "load_before": load_before,
        "load_after": load_after,
    }


def _ceiling(work: Path, warm: Path, candidates: int, rounds: int) -> list[dict[str, Any]]:
    """The hardware ceiling for this workload: the serial search (no Ray) in one process pinned to one CPU
    alone, vs two such processes at once, one per CPU, each with its own copy of the cache (the same
    work each). Rounds alternate the lone process's CPU."""
    rows: list[dict[str, Any]] = []
    for round_index in range(rounds):
        lone_cpu = round_index % 2
        for pair in (False, True):
            cpus = (0, 1) if pair else (lone_cpu,)
            children = []
            load_before = load_average()
            for cpu in cpus:
                cache, out = work / f"ceiling-cache-{cpu}", work / f"ceiling-out-{cpu}"
                for folder in (cache, out):
                    shutil.rmtree(folder, ignore_errors=True)
                shutil.copytree(warm, cache)
                config = _config(work, cache, out, candidates, name=f"ceiling-{cpu}.json")
                children.append(_drive(config, None, prefix=["taskset", "-c", str(cpu)]))
            results = [_finish(child) for child in children]
            load_after = load_average()
            for cpu, (elapsed, footprint) in zip(cpus, results, strict=True):
                row = _row(footprint, elapsed, load_before, load_after)
                row.update(cpu=cpu, processes=len(cpus), round=round_index)
                print(
                    json.dumps({k: v for k, v in row.items() if k not in ("outline", "ran_on")}), flush=True
                )
                rows.append(row)
    return rows


def _fmt(pair: list[float | None] | None) -> str:
    if not pair or pair[0] is None:
        return "-"
    value, spread = pair
    return f"{value:.2f}" + (f" ± {spread:.2f}" if spread is not None else "")


def _median_timed(runs: list[dict[str, Any]], cid: str, key: str) -> list[float | None] | None:
    pairs = [r["timed"][cid][key] for r in runs if key in r.get("timed", {}).get(cid, {})]
    if not pairs:
        return None
    spreads = [p[1] for p in pairs if p[1] is not None]
    return [median(p[0] for p in pairs), median(spreads) if spreads else None]


def _throughput(rows: list[dict[str, Any]], mode: str) -> tuple[float, float, float] | None:
    one = [r for r in rows if r["cpus"] == 1 and r.get("mode", "cached") == mode]
    two = [r for r in rows if r["cpus"] == 2 and r.get("mode", "cached") == mode]
    if not one or not two:
        return None
    rate1, rate2 = median(r["per_minute"] for r in one), median(r["per_minute"] for r in two)
    return rate1, rate2, (rate2 / rate1 if rate1 else float("nan"))


_MODE_TEXT = {
    "cached": "the input evaluation and the shared conversion + optimization prefix cached before the timed "
    "run (the candidates' work only)",
    "whole": "the whole search from an empty cache",
    "warm": "as `cached`, with the cluster's task processes started and their imports done before the "
    "timed run",
    "shared": "as `cached`, `search_timing` `in_place` (every task times its candidate, beside the others)",
    "apart": "as `cached`, `search_timing` `apart` (every candidate timed alone after the batch's untimed "
    "work: the two-phase design)",
}
_CLUSTER_TEXT = {
    "nodes": "a local cluster of 1 node vs 2 nodes of 1 CPU each (`ray start` per node, the head then a "
    "worker node), each node's processes pinned to a CPU of its own with `taskset` (node 1: CPU 0, node 2: "
    "CPU 1), in a private network namespace (`unshare -n`: nothing of the cluster listens in the machine's "
    "own namespace, checked with `ss -ltnp` each run); the search's driver is a process of its own in the "
    "namespace, not pinned. Every task holds its node's one CPU, so under `search_timing` `auto` each "
    "candidate is timed in its task",
    "slots": "a local cluster of one node with 1 CPU vs 2 CPUs for tasks (task slots of one node, "
    "unpinned); under `search_timing` `auto` the 1-CPU node's task times in place, the 2-CPU node's "
    "candidates are timed apart",
}


def _places(r: dict[str, Any]) -> str:
    """How many of a run's candidates were timed in their task / apart."""
    ran = [w for w in (r.get("ran_on") or {}).values() if w]
    here = sum(1 for w in ran if w.get("timed_in_place") and w.get("evaluated_here"))
    apart = sum(1 for w in ran if w.get("timed"))
    return f"{here} / {apart}"


def _ceiling_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The hardware ceiling's table and ratio (see :func:`_ceiling`)."""
    lines = [
        "",
        "Hardware ceiling (`--ceiling`): the same search, serial (no Ray), in one process pinned to one CPU "
        "(`taskset`) alone, vs two such processes at once, one per CPU, each with its own copy of the "
        "cache (each does all the candidates; imports included in both).",
        "",
        "| round | processes | CPU | seconds | candidates/min | best | load before -> after |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    ratios = []
    for round_index in sorted({r["round"] for r in rows}):
        lone = [r for r in rows if r["round"] == round_index and r["processes"] == 1]
        pair = [r for r in rows if r["round"] == round_index and r["processes"] == 2]
        for r in lone + pair:
            lines.append(
                f"| {round_index + 1} | {r['processes']} | {r['cpu']} | {r['seconds']} | {r['per_minute']} | "
                f"{r['best']} | {' '.join(map(str, r['load_before']))} -> "
                f"{' '.join(map(str, r['load_after']))} |"
            )
        if lone and pair:
            ratios.append(2 * lone[0]["seconds"] / max(r["seconds"] for r in pair))
    if ratios:
        lines += [
            "",
            f"- Ceiling: 2 processes / 1 process, candidates per minute (the pair's slower process): "
            f"{', '.join(f'{x:.2f}x' for x in ratios)}; median **{median(ratios):.2f}x**.",
        ]
    return lines


def _markdown(doc: dict[str, Any]) -> str:
    rows = doc.get("runs", [])
    ceiling = doc.get("ceiling", [])
    every = rows + ceiling
    modes = doc.get("modes", [])
    kind = doc.get("cluster", "slots")
    lines = [
        "## Search over Ray (`bench/ray_search.py`)",
        "",
        f"Run {doc['when']} on the shared build machine ({doc['machine']['usable_cpus']} usable CPUs). "
        f"The first {doc['candidates']} candidates of `examples/minilm-search` (sequential), "
        "`search_workers` 2, each task reserving 1 CPU and pinned to a CPU of its own",
    ]
    if rows:
        lines[-1] += (
            f", on {_CLUSTER_TEXT[kind]}. The timer starts once the fresh cluster's nodes are registered. "
            + "; ".join(f"`{m}`: {_MODE_TEXT[m]}" for m in modes)
            + f". {doc['rounds']} interleaved round(s); medians."
        )
        lines += [
            "",
            "| cluster | mode | seconds | candidates/min | timed in task / apart | input task / candidates "
            "from | tasks: span / sum (CPU s) / timed sum / slowest first | best | load before -> after |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
    else:
        lines[-1] += "."
    for r in rows:
        tasks = r.get("tasks") or {}
        spans = (
            f"{tasks['span']} / {tasks['sum']} ({tasks.get('cpu', '-')} CPU) / {tasks.get('timed', '-')} / "
            f"{tasks['first']}"
            if tasks
            else "-"
        )
        before = r.get("before_candidates")
        early = f"{before[0]} / {before[1]}" if before else "-"
        shape = f"{r['cpus']} node(s) x 1 CPU" if r.get("cluster") == "nodes" else f"1 node x {r['cpus']} CPU"
        lines.append(
            f"| {shape} | {r.get('mode', 'cached')} | {r['seconds']} | {r['per_minute']} | {_places(r)} | "
            f"{early} | {spans} | {r['best']} | {' '.join(map(str, r['load_before']))} -> "
            f"{' '.join(map(str, r['load_after']))} |"
        )
    if rows:
        lines.append("")
    for mode in _MODES:
        found = _throughput(rows, mode)
        if found is None:
            continue
        rate1, rate2, ratio = found
        verdict = "met" if ratio >= GOAL else "NOT met"
        lines.append(
            f"- `{mode}`: {rate1:.2f} -> {rate2:.2f} candidates/min, ratio 2 workers / 1 worker "
            f"**{ratio:.2f}x** (goal >= {GOAL}x: {verdict})."
        )
    if rows:
        outside = [r["outside_listeners"] for r in rows if r.get("outside_listeners") is not None]
        lines += [
            "- Timed in task / apart: candidates whose timed metrics ran in their own task (it held its "
            "node) / in a task of their own after the batch's untimed work; pruned ones are in neither.",
            "- Input task / candidates from (seconds, `whole`, from the footprint's `ran_on`): the input "
            "model's evaluation task, and when the first candidate started, both from that task's start "
            "(the shared prefix runs in between or beside it).",
            "- Tasks (seconds, from each candidate's `ran_on`): span from the first task's start to the last "
            "one's end; sum of the candidate tasks' own times (in brackets the CPU seconds their processes "
            "used meanwhile); sum of the timing tasks' times (candidates timed apart); slowest first task of "
            "a task process (it pays the process's imports and evaluator set-up, once per process).",
        ]
        if outside:
            heard = sorted({a for found in outside for a in found})
            lines.append(
                "- Sockets of the cluster's processes listening in the machine's own network namespace "
                f"(`ss -ltnp`): {', '.join(heard) if heard else 'none'} ({len(outside)} cluster(s) checked)."
            )
    if ceiling:
        lines += _ceiling_lines(ceiling)
    for what, picked in (("Ray run", rows), ("ceiling process", ceiling)):
        if picked:
            same_outline = len({json.dumps(r["outline"]) for r in picked}) == 1
            bests = sorted({r["best"] for r in picked})
            lines.append(
                f"- Same candidates (ids, model ids, statuses) in every {what}: "
                f"{'yes' if same_outline else 'NO'}; best model: {', '.join(bests)}"
                f"{' in every one' if len(bests) == 1 else ' (NOT the same in every one)'}."
            )
    columns: list[tuple[str, list[dict[str, Any]]]] = []
    for mode in _MODES:
        for cpus in (1, 2):
            picked = [r for r in rows if r.get("mode", "cached") == mode and r["cpus"] == cpus]
            if picked:
                columns.append((f"{mode}, {cpus} worker{'s' if cpus > 1 else ''}", picked))
    for processes in (1, 2):
        picked = [r for r in ceiling if r["processes"] == processes]
        if picked:
            columns.append((f"ceiling, {processes} process{'es' if processes > 1 else ''}", picked))
    ids = sorted({cid for r in every for cid in r.get("timed", {})})
    keys = sorted({key for r in every for timed in r.get("timed", {}).values() for key in timed})
    for key in keys:
        lines += [
            "",
            f"Timed metric `{key}` per candidate (value ± spread, medians over the runs of each column; a "
            "pruned candidate has none):",
            "",
            "| candidate | " + " | ".join(name for name, _ in columns) + " |",
            "| --- | " + " | ".join("---" for _ in columns) + " |",
        ]
        for cid in ids:
            cells = [_fmt(_median_timed(picked, cid, key)) for _, picked in columns]
            lines.append(f"| {cid} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render(path: Path) -> str:
    """The markdown of a saved result (``--render``)."""
    doc: dict[str, Any] = json.loads(path.read_text())
    return _markdown(doc)


_MODES = ("cached", "whole", "warm", "shared", "apart")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument(
        "--modes",
        default="cached,whole",
        help="comma-separated: cached (input evaluation + shared prefix cached first), whole (empty cache), "
        "warm (cached, and the task processes started with their imports done before the timed run), "
        "shared (cached, search_timing in_place: each candidate timed by its own task beside the others), "
        "apart (cached, search_timing apart: every candidate timed alone after the batch's barrier)",
    )
    parser.add_argument(
        "--cluster",
        choices=("nodes", "slots"),
        default="nodes",
        help="nodes: one 1-CPU node per worker, each pinned to its own CPU, in a private network namespace; "
        "slots: one node with 1 or 2 CPUs",
    )
    parser.add_argument(
        "--ceiling",
        action="store_true",
        help="also (first): the serial search in 1 process pinned to a CPU vs 2 at once, one per CPU "
        "(with --modes '': only that)",
    )
    parser.add_argument("--doc", action="store_true", help="write the block in BENCHMARKS.md")
    parser.add_argument("--render", type=Path, help="only render a saved result (with --doc: write it)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args.child)
    if args.render:
        markdown = render(args.render)
        print(markdown)
        if args.doc:
            write_doc_block("ray-search", markdown)
        return 0
    modes = [m for m in args.modes.split(",") if m]
    if (not modes and not args.ceiling) or set(modes) - set(_MODES):
        parser.error(f"--modes: {', '.join(_MODES)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    subprocess.run([sys.executable, str(EXAMPLE / "prepare.py")], check=True)
    work = WORK / "ray-search"
    prepare_workdir(EXAMPLE, work / "minilm")
    prepare_workdir(SEARCH_EXAMPLE, work / "minilm-search")
    # The tasks claim CPUs in a lock folder of their own: other Olivine processes on this shared machine
    # (another bench's or test's workers) do not make them wait (the cluster's processes inherit it).
    os.environ[LOCK_DIR_ENV] = str(work / "cpu-locks")
    warm = work / "warm-cache"  # content-addressed: an earlier run's is as good as a new one
    warm_seconds, _ = _run(_config(work, warm, work / "warm-out", None), None)
    print(f"warm-up (input evaluation + shared prefix, serial): {warm_seconds:.1f}s", flush=True)
    doc: dict[str, Any] = {
        "when": datetime.now().strftime("%Y-%m-%d %H:%M"),
        "candidates": args.candidates,
        "rounds": args.rounds,
        "warm_seconds": round(warm_seconds, 1),
        "machine": machine_info(),
    }
    if args.ceiling:
        doc["ceiling"] = _ceiling(work, warm, args.candidates, args.rounds)
    runs: list[dict[str, Any]] = []
    for round_index in range(args.rounds):
        order = (1, 2) if round_index % 2 == 0 else (2, 1)
        for mode in modes:
            for cpus in order:
                run = _measure(work, warm, cpus, args.candidates, mode, args.cluster)
                shown = {k: v for k, v in run.items() if k not in ("outline", "ran_on")}
                print(json.dumps(shown), flush=True)
                runs.append(run)
    doc.update(modes=modes, cluster=args.cluster, runs=runs)
    name = "ray-search"
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(doc, indent=2))
    markdown = _markdown(doc)
    print(markdown)
    if args.doc:
        write_doc_block("ray-search", markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
