"""End-to-end wall time of the MiniLM workflow: Olivine vs Olive, whole run (fresh caches) and re-run.

Usage: ``.venv/bin/python bench/e2e.py [--rounds N] [--tools olivine,olive] [--out DIR]``

Each tool gets a fresh copy of ``examples/minilm`` (files copied, the model folder linked), so its
cache, its output folder, its job store and the user_script's reference embeddings start empty. A
round is: whole run of each tool, then the cached re-run of each (the same command again in the same
folder). Rounds
alternate the order of the tools. Both commands are timed the same way (``common.run_timed``: process
start to exit) with the same environment (``HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 CI=1``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    BENCH,
    EXAMPLE,
    MAIN_VENV,
    OLIVE_PYTHON,
    WORK,
    bench_env,
    median,
    prepare_workdir,
    run_timed,
    tail,
)
from e2e_breakdown import breakdown
from olive_config import write_olive_config

OLIVINE = MAIN_VENV / "bin" / "olivine"
#: Olivine runs the *equivalent* workflow: in this process (``--local``: no job, no export, as Olive runs),
#: evaluating the same models Olive evaluates without a search strategy (the input and the final model;
#: the example itself also evaluates every intermediate model, ``evaluate_intermediate_models``).
TOOLS = ("olivine", "olive")
OLIVINE_FLAGS = ["--local"]


def equivalent_config(work: Path) -> Path:
    """``work/config.equivalent.json``: the example config evaluating what Olive evaluates."""
    cfg = json.loads((work / "config.json").read_text(encoding="utf-8"))
    cfg.setdefault("engine", {})["evaluate_intermediate_models"] = False
    path = work / "config.equivalent.json"
    path.write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    return path


def command_for(tool: str, work: Path) -> list[str]:
    """The command that runs the workflow in ``work`` (a prepared copy of the example)."""
    if tool == "olivine":
        return [str(OLIVINE), "run", "--config", str(equivalent_config(work)), *OLIVINE_FLAGS]
    if tool == "olive":
        olive_cfg = write_olive_config(work / "config.json", work)
        return [
            str(OLIVE_PYTHON),
            str(BENCH / "olive_workflow.py"),
            str(olive_cfg),
            "--summary",
            str(work / "olive_summary.json"),
        ]
    raise ValueError(f"unknown tool {tool}")


def env_for(work: Path) -> dict[str, str]:
    """The shared benchmark environment; Olivine's job store and default datastore go into ``work``
    (``OLIVINE_HOME``), so a whole run never seeds from an earlier export and nothing is left behind."""
    return bench_env({"OLIVINE_HOME": str(work / "olivine-home")})


def _record(timed: Any) -> dict[str, Any]:
    record: dict[str, Any] = timed.to_json()
    if timed.returncode != 0:
        record["error_tail"] = tail(timed.log)
    return record


def measure_e2e(
    run_dir: Path, *, rounds: int = 1, tools: tuple[str, ...] = TOOLS, example: Path = EXAMPLE
) -> dict[str, Any]:
    """Time whole runs and cached re-runs of ``tools``; the last round's folders are kept for
    ``model_latency.py``.

    Returns:
        ``{"rounds": N, "tools": {tool: {"whole": [...], "cached": [...], "whole_s": median,
        "cached_s": median, "workdir": str, "ok": bool}}}``.
    """
    results: dict[str, dict[str, Any]] = {t: {"whole": [], "cached": []} for t in tools}
    for r in range(rounds):
        order = list(tools) if r % 2 == 0 else list(reversed(tools))
        commands: dict[str, list[str]] = {}
        for tool in order:
            work = prepare_workdir(example, run_dir / f"{tool}-r{r}")
            commands[tool] = command_for(tool, work)
            results[tool]["workdir"] = str(work)
            timed = run_timed(commands[tool], cwd=work, env=env_for(work), log=work / "whole.log")
            # Read now: only the last round's folders are kept.
            stages = breakdown(tool, work / "whole.log", timed.wall_s)
            results[tool]["whole"].append({**_record(timed), "stages": stages})
            print(
                f"e2e round {r + 1}/{rounds}: {tool} whole run {timed.wall_s:.1f} s (exit {timed.returncode})"
            )
        for tool in order:
            work = Path(results[tool]["workdir"])
            timed = run_timed(commands[tool], cwd=work, env=env_for(work), log=work / "cached.log")
            results[tool]["cached"].append(_record(timed))
            label = f"e2e round {r + 1}/{rounds}: {tool} cached re-run"
            print(f"{label} {timed.wall_s:.1f} s (exit {timed.returncode})")
    for r in range(rounds - 1):  # earlier rounds' folders (~1 GB each) are not needed afterwards
        for tool in tools:
            shutil.rmtree(run_dir / f"{tool}-r{r}", ignore_errors=True)
    for tool, res in results.items():
        ok = all(x["returncode"] == 0 for x in res["whole"] + res["cached"])
        res["ok"] = ok
        res["whole_s"] = median(x["wall_s"] for x in res["whole"]) if ok else None
        res["cached_s"] = median(x["wall_s"] for x in res["cached"]) if ok else None
        res["command"] = commands_display(tool)
        res["outputs"] = read_outputs(tool, Path(res["workdir"]))
        summary = Path(res["workdir"]) / "olive_summary.json"
        if tool == "olive" and summary.is_file():
            res["patches"] = json.loads(summary.read_text(encoding="utf-8")).get("patches", [])
    return {"rounds": rounds, "tools": results}


def commands_display(tool: str) -> str:
    """The command as a person would type it in the work folder."""
    if tool == "olivine":
        return " ".join([".venv/bin/olivine", "run", "--config", "config.equivalent.json", *OLIVINE_FLAGS])
    return "bench/.olive-venv/bin/python bench/olive_workflow.py olive_config.json"


def _output_dirs(tool: str, work: Path) -> list[Path]:
    """Output folders holding a footprint, oldest first (the whole run's before the re-run's)."""
    if tool == "olive":
        roots = [work / "olive-output"]
    else:
        # As a job: ``<OLIVINE_HOME>/jobs/<id>/output``; in-process runs: where the config says.
        roots = [p.parent for p in work.rglob("footprint.json") if "datastore" not in p.parts]
    found = [r for r in roots if (r / "footprint.json").is_file()]
    return sorted(set(found), key=lambda r: (r / "footprint.json").stat().st_mtime)


def read_outputs(tool: str, work: Path) -> dict[str, Any]:
    """The best model's metrics and the model files a tool produced (for the latency stage)."""
    outs = _output_dirs(tool, work)
    if not outs:
        return {}
    out = outs[0]
    result: dict[str, Any] = {"output_dir": str(out)}
    if (out / "metrics.json").is_file():
        result["metrics"] = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    footprint = json.loads((out / "footprint.json").read_text(encoding="utf-8"))
    result["models"] = models_by_pass(footprint)
    nodes = footprint_nodes(footprint)
    result["evaluated_models"] = sum(1 for n in nodes.values() if isinstance(n, dict) and n.get("metrics"))
    if (out / "model_config.json").is_file():
        result["best_model"] = model_file(out / "model_config.json")
    return result


def footprint_nodes(footprint: dict[str, Any]) -> dict[str, Any]:
    """Olivine nests the nodes under ``"nodes"``; Olive's footprint is the node mapping itself."""
    nodes = footprint.get("nodes", footprint)
    return nodes if isinstance(nodes, dict) else {}


def models_by_pass(footprint: dict[str, Any]) -> dict[str, str]:
    """``{pass type (lower case): model file}`` from a footprint (Olive's and Olivine's shapes)."""
    nodes = footprint_nodes(footprint)
    found: dict[str, str] = {}
    for node in nodes.values():
        if not isinstance(node, dict) or not node.get("from_pass"):
            continue
        # Olivine writes "model_config"; Olive 0.13 writes "model_config_data".
        cfg = (node.get("model_config") or node.get("model_config_data") or {}).get("config") or {}
        path = cfg.get("model_path")
        if path:
            found[str(node["from_pass"]).lower()] = str(_onnx_file(Path(path), cfg.get("onnx_file_name")))
    return found


def model_file(model_config_json: Path) -> str | None:
    """The ``.onnx`` file a ``model_config.json`` points to (paths relative to the JSON's folder)."""
    data = json.loads(model_config_json.read_text(encoding="utf-8"))
    cfg = data.get("config") or {}
    if not cfg.get("model_path"):
        return None
    path = Path(cfg["model_path"])
    if not path.is_absolute():
        path = model_config_json.parent / path
    return str(_onnx_file(path, cfg.get("onnx_file_name")))


def _onnx_file(path: Path, name: str | None) -> Path:
    if path.is_dir():
        if name:
            return path / name
        found = sorted(path.glob("*.onnx"))
        return found[0] if len(found) == 1 else path
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--out", type=Path, default=WORK / datetime.now().strftime("%Y%m%d-%H%M%S"))
    args = parser.parse_args()
    result = measure_e2e(args.out, rounds=args.rounds, tools=tuple(args.tools.split(",")))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
