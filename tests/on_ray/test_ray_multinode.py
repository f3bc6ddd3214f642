"""The Ray host on a two-node cluster: a head and a worker node (two ``ray start`` processes, as two
machines would run them), in a private network namespace (see :mod:`ray_head`: a worker node needs a
setting that may bind beyond loopback; in the namespace loopback is the only interface).

Custom resources steer the work: the head node has ``olv_head``, the worker node ``olv_node``, one CPU
each. A job whose entrypoint asks for ``olv_node`` runs its worker on the worker node, finishes after its
submitter was killed and the submitter's whole Olivine home deleted (the submitting machine is gone), and
exports the spec's layout, read from another home through the datastore. A search job whose entrypoint
holds the head's only CPU runs all its candidate tasks on the worker node.

Every Olivine command here runs in the namespace (``head.in_netns``), as a subprocess: the test process
itself cannot reach the cluster.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.host_suite import write_workflow
from integration.test_search import outline, search_config
from integration.test_search_input_seam import FIXED_THEN_SEARCHED
from olivine.engine.resolve import load_workflow
from olivine.engine.run import run_workflow
from on_ray.test_ray_search import FAILING_SEARCH
from ray_head import RayHead, RayNode, netns_available

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[tuple[RayHead, RayNode]]:
    why = netns_available()
    if why is not None:
        pytest.skip(f"a second Ray node runs only in a private network namespace here: {why}")
    temp_dir = Path(tempfile.mkdtemp(prefix="olv-ray2-", dir="/tmp"))
    head = RayHead(temp_dir, num_cpus=1, resources={"olv_head": 1}, netns=True)
    head.start()
    try:
        node = head.add_node(num_cpus=1, resources={"olv_node": 1})
        yield head, node
    finally:
        head.stop()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _node_id(head: RayHead, resource: str) -> str:
    [node] = [n for n in head.alive_nodes() if resource in n.get("resources_total", {})]  # type: ignore[operator]
    return str(node["node_id"])


def _olivine(head: RayHead, home: Path, *args: str) -> Any:
    done = subprocess.run(
        head.in_netns([sys.executable, "-m", "olivine", *args]),
        env={**os.environ, "OLIVINE_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, (args, done.stderr[-3000:])
    return json.loads(done.stdout) if "--json" in args else done.stdout


def _home(root: Path, address: str, **host: Any) -> Path:
    root.mkdir(parents=True)
    system = {"type": "Ray", "address": address, "entrypoint_num_cpus": 1, **host}
    (root / "hosts.yaml").write_text(json.dumps({"hosts": {"cluster": system}}))  # JSON is YAML
    return root


def _descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        stat = Path(f"/proc/{pid}/stat").read_text()
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return False


def test_the_cluster_is_reachable_only_inside_its_namespace(two_nodes: tuple[RayHead, RayNode]) -> None:
    head, node = two_nodes
    # The namespace has loopback only: whatever Ray binds there (a node off 127.0.0.1 binds some ports
    # on 0.0.0.0) is reachable from nowhere else.
    links = subprocess.run(head.in_netns(["ip", "-o", "link"]), capture_output=True, text=True, check=True)
    assert [line.split(":")[1].strip() for line in links.stdout.splitlines()] == ["lo"]
    inside = subprocess.run(head.in_netns(["ss", "-ltnpH"]), capture_output=True, text=True, check=True)
    listening = [line.split()[3] for line in inside.stdout.splitlines()]
    assert any(addr.startswith("127.0.0.2:") for addr in listening), listening  # the worker node's
    # Nothing of the cluster listens in this machine's own namespace.
    assert head.proc is not None
    outside = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    assert not any(f"pid={pid}," in outside for pid in _tree(head.proc.pid) | _tree(node.pid))
    assert len(head.alive_nodes()) == 2


def _tree(root: int) -> set[int]:
    """``root`` and its descendants."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, grew = {root}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in found} - found
        found |= more
        grew = bool(more)
    return found


def test_a_job_on_the_worker_node_outlives_its_submitting_machine_and_exports_the_layout(
    two_nodes: tuple[RayHead, RayNode], tmp_path: Path
) -> None:
    head, node = two_nodes
    shared = (tmp_path / "shared").as_uri()  # the datastore both "machines" reach
    far = ("--datastore", shared, "--follow")
    submitter = _home(tmp_path / "laptop", head.address, entrypoint_resources={"olv_node": 1})
    config = write_workflow(
        tmp_path / "wf", workflow_id="far", sleep_s=4.0, passes={"quant": {"type": "OnnxDynamicQuantization"}}
    )
    cli = subprocess.Popen(
        head.in_netns(
            [sys.executable, "-m", "olivine", "run", "--config", str(config), "--host", "cluster", *far]
        ),
        env={**os.environ, "OLIVINE_HOME": str(submitter)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            assert cli.poll() is None and time.monotonic() < deadline, "the job never started"
            jobs = _olivine(head, submitter, "list", "--json")
            if jobs and jobs[0]["state"] == "RUNNING":
                break
            time.sleep(1.0)
        job_id = jobs[0]["job_id"]
        os.killpg(cli.pid, signal.SIGKILL)  # the submitter and its session, as a closed laptop would
        cli.wait(10)
    finally:
        if cli.poll() is None:
            os.killpg(cli.pid, signal.SIGKILL)
            cli.wait()
    shutil.rmtree(submitter)  # and the laptop is gone: job store, job folder, bundle
    # The job's driver runs on the worker node: Ray says so, and its process descends from that node's.
    info = head.get(f"/api/jobs/{job_id}")
    assert isinstance(info, dict) and info["driver_node_id"] == _node_id(head, "olv_node")
    deadline = time.monotonic() + 120
    while not (found := list((tmp_path / "shared").rglob("far/status.json"))):  # the worker reports
        assert time.monotonic() < deadline, "the worker never wrote its status"
        time.sleep(0.5)
    pid = int(json.loads(found[0].read_text())["worker"]["pid"])
    assert _descends_from(pid, node.pid) and not _descends_from(pid, head.proc.pid)  # type: ignore[union-attr]
    # Another machine, another home: it re-attaches through the datastore alone.
    other = _home(tmp_path / "desk", head.address)
    deadline = time.monotonic() + 180
    while not (status := _olivine(head, other, "status", "--datastore", shared, "far", "--json"))["sealed"]:
        assert time.monotonic() < deadline, status
        time.sleep(1.0)
    assert status["state"] == "SUCCEEDED", status["message"]
    export_root = status["paths"]["export_root"]
    export = Path(str(export_root).removeprefix("file://"))
    manifest = json.loads((export / "manifest.json").read_text())
    assert manifest["status"]["state"] == "SUCCEEDED"
    paths = {f["path"] for f in manifest["files"]}
    assert {"output/model/model.onnx", "output/model_config.json"} <= paths
    assert any(p.startswith("cache/runs/") for p in paths) and any(
        p.startswith("logs/worker/") for p in paths
    )
    _olivine(head, other, "fetch", export_root, "--to", str(tmp_path / "fetched"))
    assert (tmp_path / "fetched" / "output" / "model" / "model.onnx").is_file()


def _search_job(
    head: RayHead, home: Path, config: Path
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """Run a search job to its end: its Ray job info, the Ray tasks it ran, its exported footprint."""
    before = {t["task_id"] for t in _tasks(head)}
    job = _olivine(head, home, "run", "--config", str(config), "--host", "cluster", "--json")["job_id"]
    deadline = time.monotonic() + 300
    while (status := _olivine(head, home, "status", job, "--json"))["state"] in ("PENDING", "RUNNING"):
        assert time.monotonic() < deadline, status
        time.sleep(1.0)
    assert status["state"] == "SUCCEEDED", status["message"]
    info = head.get(f"/api/jobs/{job}")
    assert isinstance(info, dict)
    tasks = [t for t in _tasks(head) if t["task_id"] not in before and t.get("type") == "NORMAL_TASK"]
    export = Path(str(status["export_root"]).removeprefix("file://"))
    return info, tasks, json.loads((export / "output" / "footprint.json").read_text())


def test_a_search_job_runs_its_candidates_on_the_worker_node(
    two_nodes: tuple[RayHead, RayNode], tmp_path: Path
) -> None:
    head, _ = two_nodes
    # The entrypoint holds the head node's only CPU: every 1-CPU candidate task must go to the worker node.
    home = _home(
        tmp_path / "home",
        head.address,
        entrypoint_resources={"olv_head": 1},
        search_workers=2,
        search_task_cpus=1,
    )
    strategy = {"execution_order": "joint", "sampler": "sequential", "include_pass_params": False}
    config = tmp_path / "b" / "cfg.json"
    config.write_text(
        json.dumps(search_config(tmp_path / "b", FAILING_SEARCH, strategy, latency_priority=-1))
    )
    info, tasks, footprint = _search_job(head, home, config)
    assert info["driver_node_id"] == _node_id(head, "olv_head")
    assert tasks and {t["node_id"] for t in tasks} == {_node_id(head, "olv_node")}, tasks
    assert len(outline(footprint)) >= 2
    # Each task held its node's one CPU (search_timing auto): it timed its candidate itself.
    evaluated = [c for c in footprint["candidates"] if c["status"] == "evaluated"]
    assert evaluated and all(c["ran_on"]["timed_in_place"] for c in evaluated)
    assert not any("timed" in c["ran_on"] for c in evaluated)


def test_a_search_on_two_one_cpu_nodes_times_every_candidate_in_its_task_and_gives_the_serial_result(
    two_nodes: tuple[RayHead, RayNode], tmp_path: Path
) -> None:
    head, _ = two_nodes
    # The entrypoint reserves no CPU (Ray's default): the candidate tasks take both nodes' one CPU each.
    home = _home(
        tmp_path / "home",
        head.address,
        entrypoint_num_cpus=0,
        entrypoint_resources={"olv_head": 1},
        search_workers=2,
        search_task_cpus=1,
    )
    strategy = {"execution_order": "joint", "sampler": "sequential", "include_pass_params": False}
    serial_dir, spread_dir = tmp_path / "a", tmp_path / "b"
    serial_cfg = search_config(serial_dir, FIXED_THEN_SEARCHED, strategy, latency_priority=-1)
    (serial_dir / "cfg.json").write_text(json.dumps(serial_cfg))
    run_workflow(load_workflow(serial_dir / "cfg.json"))
    serial = json.loads((serial_dir / "out" / "footprint.json").read_text())
    config = spread_dir / "cfg.json"
    config.write_text(
        json.dumps(search_config(spread_dir, FIXED_THEN_SEARCHED, strategy, latency_priority=-1))
    )
    _, tasks, spread = _search_job(head, home, config)
    assert outline(spread) == outline(serial) and spread["best"] == serial["best"]
    assert {t["node_id"] for t in tasks} == {_node_id(head, "olv_head"), _node_id(head, "olv_node")}
    for candidate in spread["candidates"]:
        where = candidate["ran_on"]
        assert where["timed_in_place"] is True and "timed" not in where and where["evaluated_here"]
        assert candidate["metrics"]["latency-avg"]["value"] > 0
    # The input model was timed in its own task (one input task, no second one to time it) while the
    # step every candidate shares ran on the other node.
    where = spread["input"]["ran_on"]
    assert where["timed_in_place"] is True and "timed" not in where
    inputs = [t for t in tasks if "input_on_node" in t["name"]]
    chains = [t for t in tasks if "chain_task" in t["name"]]
    assert len(inputs) == 1 and chains, [t["name"] for t in tasks]
    assert chains[0]["node_id"] != inputs[0]["node_id"]


def _tasks(head: RayHead) -> list[dict[str, Any]]:
    data = head.get("/api/v0/tasks?limit=10000&detail=1")
    assert isinstance(data, dict), data
    return list(data["data"]["result"]["result"])
