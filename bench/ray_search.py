"""Search over Ray: the MiniLM search's candidates per minute on a Ray cluster with 1 CPU vs 2 CPUs for
candidates, the same config (``search_workers`` 2, 1 CPU per candidate task), and the best model of each.

The cluster is a local head on 127.0.0.1 started by this script (``--num-cpus`` 1 or 2; stopped by its
PID); the timer starts once its node is registered alive (a search uses a running cluster). The 2
workers are two 1-CPU task slots of one node, not two nodes: a node with 2 CPUs runs two 1-CPU tasks at
once, as two 1-CPU worker nodes would, and the tasks open the cache by the same path. A real multi-node
cluster on this machine needs a private network namespace (``tests/on_ray/test_ray_multinode.py`` runs
one: Ray binds beyond loopback otherwise) and adds a raylet and agents per node on the same 2 CPUs.

Throughputs: ``cached``, the candidates' work only (a warm-up run, not timed, caches the input model's
evaluation and the shared prefix, conversion + transformer optimization, and each measured run starts
from a fresh copy of that cache), and ``whole``, the whole search from an empty cache (the input model's
untimed metrics as a task on one slot while the shared prefix runs as a task on the other, then its
timed metrics alone, then the candidates; with 1 CPU one after the other), and, with ``--modes warm``,
``cached`` with the task processes started and their imports done before the timer (Ray starts a job's
worker processes afresh; each pays ~10 s of imports on its one CPU before its first candidate, a cost
that does not shrink with more workers), and, with ``--modes shared``, ``cached`` with each candidate's
timed metrics run by its own task beside the other tasks (no barrier; the executor's
``timed_apart=False``). Each batch of candidates is realised in two phases (passes and untimed metrics
spread over the task slots, a barrier, then each candidate's timed metrics in a task of its own with
nothing else of the search running; :mod:`olivine.engine.ray_executor`). Each run
realises the first ``--candidates`` points of ``examples/minilm-search`` (sequential sampler) through
:class:`olivine.engine.ray_executor.RayExecutor` in this process. Rounds interleave the clusters
(alternating which goes first); medians are reported, with the load average before and after each run
(the machine is shared).

Isolation: each task pins its threads to a CPU of its own (:mod:`olivine.engine.affinity`) and timed
metrics run with no other task of the search running, so the candidates' timed latencies should agree
between the 1-worker and the 2-worker runs; the report lists them side by side with the CPUs each
candidate's tasks ran on and the threads seen outside them.

    flock /work/.bench.lock .venv/bin/python bench/ray_search.py [--rounds 1] [--candidates 8] \
        [--modes cached,whole,warm,shared] [--doc]
    .venv/bin/python bench/ray_search.py --render bench/results/ray-search-<timestamp>.json [--doc]
"""

from __future__ import annotations

import argparse
import json
import logging
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

from ray_head import RayHead  # sets Ray's loopback environment before Ray is imported

SEARCH_EXAMPLE = REPO / "examples" / "minilm-search"
GOAL = 1.6
_SETTLE_S = 2.0  # after the node registers: its agents finish starting before the timer starts


def _config(work: Path, cache: Path, out: Path, candidates: int | None) -> Path:
    """The example's search config: cache and output here, no PNG, the first ``candidates`` points (None:
    the warm-up, which keeps only the shared prefix)."""
    data: dict[str, Any] = json.loads((work / "minilm-search" / "config.json").read_text())
    engine = data["engine"]
    engine.update(cache_dir=str(cache), output_dir=str(out), plot_pareto_frontier=False)
    if candidates is None:
        data["passes"].pop("quantization")
    else:
        engine["search_strategy"] = {**engine["search_strategy"], "max_iter": candidates}
    path = work / "minilm-search" / ("warm.json" if candidates is None else "bench.json")
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


def _run(
    config: Path, address: str | None, warm_slots: int = 0, timed_apart: bool = True
) -> tuple[float, dict[str, Any]]:
    from olivine.engine.executor import SpreadSettings
    from olivine.engine.ray_executor import RayExecutor
    from olivine.engine.resolve import load_workflow
    from olivine.engine.run import run_workflow

    workflow = load_workflow(config)
    executor = (
        RayExecutor(SpreadSettings(workers=2, num_cpus=1, address=address), timed_apart=timed_apart)
        if address
        else None
    )
    if address and warm_slots:
        _warm_workers(address, warm_slots)
    start = time.perf_counter()
    try:
        result = run_workflow(workflow, executor=executor)
    finally:
        if warm_slots:
            import ray

            ray.shutdown()
    elapsed = time.perf_counter() - start
    footprint: dict[str, Any] = json.loads((result.output_dir / "footprint.json").read_text())
    return elapsed, footprint


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
    """Wait until the fresh cluster's node is registered alive and its start-up work is over: the
    dashboard answers seconds before the node registers, and a driver's ``ray.init`` meanwhile waits for
    it (a cluster's start-up is not the search's time; a search uses a running cluster)."""
    assert head.proc is not None
    head._wait(lambda: len(head.alive_nodes()) >= 1, head.proc, "head.log")
    time.sleep(_SETTLE_S)


def _measure(work: Path, warm: Path, cpus: int, candidates: int, mode: str) -> dict[str, Any]:
    cache, out = work / f"cache-{cpus}", work / f"out-{cpus}"
    for folder in (cache, out):
        shutil.rmtree(folder, ignore_errors=True)
    if mode in ("cached", "warm", "shared"):
        shutil.copytree(warm, cache)
    config = _config(work, cache, out, candidates)
    temp = Path(tempfile.mkdtemp(prefix="olv-ray-", dir="/tmp"))  # short: Ray's socket paths
    head = RayHead(temp, num_cpus=cpus)
    head.start()
    try:
        _settled(head)
        load_before = load_average()
        elapsed, footprint = _run(
            config, head.gcs_address, cpus if mode == "warm" else 0, timed_apart=mode != "shared"
        )
        load_after = load_average()
    finally:
        head.stop()
        shutil.rmtree(temp, ignore_errors=True)
    done = footprint["candidates"]
    best = next((c for c in done if c["id"] == footprint["best"]), None)
    where = footprint["input"].get("ran_on")
    starts = [c["ran_on"]["started"] for c in done if c.get("ran_on")]
    before = None
    if where and starts:  # the input model's task, and when the first candidate started (from its start)
        before = [round(where["ended"] - where["started"], 1), round(min(starts) - where["started"], 1)]
    return {
        "cpus": cpus,
        "mode": mode,
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


def _markdown(doc: dict[str, Any]) -> str:
    rows = doc["runs"]
    same_best = len({r["best_model_id"] for r in rows}) == 1
    same_outline = len({json.dumps(r["outline"]) for r in rows}) == 1
    lines = [
        "## Search over Ray (`bench/ray_search.py`)",
        "",
        f"Run {doc['when']} on the shared build machine ({doc['machine']['usable_cpus']} usable CPUs). "
        f"The first {doc['candidates']} candidates of `examples/minilm-search` (sequential): each one's "
        "passes and untimed metrics a Ray task reserving 1 CPU and pinned to a CPU of its own "
        "(`search_workers` 2), then, after each batch's barrier, its timed metrics in a task of its own "
        "with no other task of the search running, on a local cluster whose node "
        "has 1 CPU vs 2 CPUs for tasks: 1 worker vs 2 workers of 1 CPU each, as task slots of one node "
        "(a cluster of several nodes on this machine needs a private network namespace, as "
        "`tests/on_ray/test_ray_multinode.py` does, and a raylet and agents per node on the same 2 CPUs). "
        "The timer starts once the fresh cluster's node is registered. `cached`: the input evaluation and "
        "the shared conversion + optimization prefix are cached before the timed run (the candidates' work "
        "only); `whole`: the whole search from an empty cache (the input model's untimed metrics as a task "
        "on one slot while the shared prefix runs on the other, each on CPUs of its own, then its timed "
        "metrics alone; evaluated whole, then the prefix, with 1 CPU); `warm`: as `cached`, with the "
        "cluster's task processes started and their imports done before the timed run (each job's "
        "workers pay that once, ~10 s on one CPU); `shared`: as `cached`, with each candidate's timed "
        "metrics run by its own task beside the other tasks (pinned to CPUs of their own, no barrier: "
        "what the barrier costs, and what running side by side does to the latencies). "
        f"{doc['rounds']} interleaved round(s); medians.",
        "",
        "| cluster | mode | seconds | candidates/min | input task / candidates from | "
        "tasks: span / sum (CPU s) / timed sum / slowest first | best | load before -> after |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
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
        lines.append(
            f"| {r['cpus']} x 1 CPU | {r.get('mode', 'cached')} | {r['seconds']} | {r['per_minute']} | "
            f"{early} | {spans} | {r['best']} | {' '.join(map(str, r['load_before']))} -> "
            f"{' '.join(map(str, r['load_after']))} |"
        )
    lines.append("")
    for mode in ("cached", "whole", "warm", "shared"):
        found = _throughput(rows, mode)
        if found is None:
            continue
        rate1, rate2, ratio = found
        verdict = "met" if ratio >= GOAL else "NOT met"
        lines.append(
            f"- `{mode}`: {rate1:.2f} -> {rate2:.2f} candidates/min, ratio 2 workers / 1 worker "
            f"**{ratio:.2f}x** (goal >= {GOAL}x: {verdict})."
        )
    lines += [
        "- Input task / candidates from (seconds, `whole`, from the footprint's `ran_on`): the input "
        "model's evaluation task, and when the first candidate started, both from that task's start "
        "(the shared prefix runs in between or beside it).",
        "- Tasks (seconds, from each candidate's `ran_on`): span from the first task's start to the last "
        "one's end; sum of the candidate tasks' own times (chains and untimed metrics; in brackets the CPU "
        "seconds their processes used meanwhile, which waiting for a CPU does not raise; more than the "
        "1-worker sum: the tasks slowed each other or shared CPUs with other processes); sum of the timing "
        "tasks' times (each candidate's timed metrics, alone; pruned candidates have none); slowest first "
        "task of a task process (it pays the process's imports and evaluator set-up, once per process, in "
        "parallel across workers).",
        f"- Same candidates (ids, model ids, statuses) in every run: {'yes' if same_outline else 'NO'}; "
        f"same best model: {'yes' if same_best else 'NO'}.",
    ]
    one = [r for r in rows if r["cpus"] == 1]
    two = [r for r in rows if r["cpus"] == 2]
    ids = sorted({cid for r in rows for cid in r.get("timed", {})})
    keys = sorted({key for r in rows for timed in r.get("timed", {}).values() for key in timed})
    if ids and keys:
        lines += [
            "",
            "Timed metrics per candidate (value ± spread, medians over the runs of each cluster; a pruned "
            "candidate has none), and the CPUs each candidate's task was pinned to in the 2-worker runs "
            "(threads seen allowed outside them in brackets; then its timing task's):",
            "",
            "| candidate | "
            + " | ".join(f"{k} 1 worker | {k} 2 workers" for k in keys)
            + " | CPUs (2 workers) |",
            "| --- | " + " | ".join("--- | ---" for _ in keys) + " | --- |",
        ]
        for cid in ids:
            cells = []
            for key in keys:
                cells += [_fmt(_median_timed(one, cid, key)), _fmt(_median_timed(two, cid, key))]
            places = []
            for r in two:
                where = (r.get("ran_on") or {}).get(cid)
                if where:
                    place = f"{','.join(map(str, where['cpus']))} [{where['threads_outside']}]"
                    timing = where.get("timed")
                    if timing:
                        place += f" -> {','.join(map(str, timing['cpus']))} [{timing['threads_outside']}]"
                    places.append(place)
            lines.append(f"| {cid} | " + " | ".join(cells) + f" | {' / '.join(places) or '-'} |")
    return "\n".join(lines)


def render(path: Path) -> str:
    """The markdown of a saved result (``--render``)."""
    doc: dict[str, Any] = json.loads(path.read_text())
    return _markdown(doc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument(
        "--modes",
        default="cached,whole",
        help="comma-separated: cached (input evaluation + shared prefix cached first), whole (empty cache), "
        "warm (cached, and the task processes started with their imports done before the timed run), "
        "shared (cached, each candidate timed by its own task beside the other tasks: no barrier)",
    )
    parser.add_argument("--doc", action="store_true", help="write the block in BENCHMARKS.md")
    parser.add_argument("--render", type=Path, help="only render a saved result (with --doc: write it)")
    args = parser.parse_args(argv)
    if args.render:
        markdown = render(args.render)
        print(markdown)
        if args.doc:
            write_doc_block("ray-search", markdown)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    subprocess.run([sys.executable, str(EXAMPLE / "prepare.py")], check=True)
    work = WORK / "ray-search"
    prepare_workdir(EXAMPLE, work / "minilm")
    prepare_workdir(SEARCH_EXAMPLE, work / "minilm-search")
    warm = work / "warm-cache"  # content-addressed: an earlier run's is as good as a new one
    warm_seconds, _ = _run(_config(work, warm, work / "warm-out", None), None)
    print(f"warm-up (input evaluation + shared prefix, serial): {warm_seconds:.1f}s", flush=True)
    modes = [m for m in args.modes.split(",") if m]
    if not modes or set(modes) - {"cached", "whole", "warm", "shared"}:
        parser.error("--modes: cached, whole, warm, shared")
    runs: list[dict[str, Any]] = []
    for round_index in range(args.rounds):
        order = (1, 2) if round_index % 2 == 0 else (2, 1)
        for mode in modes:
            for cpus in order:
                run = _measure(work, warm, cpus, args.candidates, mode)
                shown = {k: v for k, v in run.items() if k not in ("outline", "ran_on")}
                print(json.dumps(shown), flush=True)
                runs.append(run)
    doc = {
        "when": datetime.now().strftime("%Y-%m-%d %H:%M"),
        "candidates": args.candidates,
        "rounds": args.rounds,
        "modes": modes,
        "warm_seconds": round(warm_seconds, 1),
        "machine": machine_info(),
        "runs": runs,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"ray-search-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(doc, indent=2))
    markdown = _markdown(doc)
    print(markdown)
    if args.doc:
        write_doc_block("ray-search", markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
