"""Shared helpers for the benchmarks: paths, machine facts, library versions, timing and formatting.

Stdlib only, so every benchmark script (in Olivine's venv or in Olive's) can import it. The pure helpers
(``median``, ``fmt_*``, ``ratio``, ``parse_cpuinfo``, ``goal_status``) are unit-tested in
``tests/unit/test_bench_common.py``.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
EXAMPLE = REPO / "examples" / "minilm"
RESULTS = BENCH / "results"
WORK = RESULTS / "work"
OLIVE_VENV = BENCH / ".olive-venv"
MAIN_VENV = REPO / ".venv"
MAIN_PYTHON = MAIN_VENV / "bin" / "python"
OLIVE_PYTHON = OLIVE_VENV / "bin" / "python"
DOC = REPO / "BENCHMARKS.md"

#: Both tools run with the same environment: offline Hugging Face, Olive's telemetry off (CI=1).
BENCH_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "CI": "1"}

#: CPU flags that decide which onnxruntime kernels run (int8 speed-ups need VNNI or AMX).
INTERESTING_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx_vnni",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
)

#: Packages whose versions are recorded for each venv.
VERSION_PACKAGES = (
    "olive-ai",
    "olivine",
    "torch",
    "transformers",
    "tokenizers",
    "onnx",
    "onnxruntime",
    "onnxscript",
    "numpy",
    "pydantic",
    "optimum",
)


def median(values: Iterable[float]) -> float:
    """Median of a non-empty sequence (raises ``ValueError`` when empty)."""
    data = list(values)
    if not data:
        raise ValueError("median of no values")
    return float(statistics.median(data))


def ratio(ours: float | None, theirs: float | None) -> float | None:
    """``ours / theirs``; ``None`` when either side is missing or ``theirs`` is not positive."""
    if ours is None or theirs is None or theirs <= 0:
        return None
    return ours / theirs


def fmt_ratio(value: float | None) -> str:
    """``0.42x``; two significant decimals, three below 0.1 (a cached re-run can be 0.05x)."""
    if value is None:
        return "-"
    return f"{value:.3f}x" if value < 0.1 else f"{value:.2f}x"


def fmt_seconds(value: float | None) -> str:
    """Seconds for humans: ``0.21 s``, ``12.3 s``, ``104 s``."""
    if value is None:
        return "-"
    if value < 10:
        return f"{value:.2f} s"
    if value < 100:
        return f"{value:.1f} s"
    return f"{value:.0f} s"


def fmt_ms(value: float | None) -> str:
    """Milliseconds with one decimal: ``92.4 ms``."""
    return "-" if value is None else f"{value:.1f} ms"


def fmt_mb(nbytes: int | None) -> str:
    """Megabytes (10^6 bytes, as ``ls -l --si`` shows them): ``91.5 MB``."""
    return "-" if nbytes is None else f"{nbytes / 1e6:.1f} MB"


def goal_status(
    value: float | None, limit: float, *, higher_is_better: bool = False, inclusive: bool = True
) -> str:
    """``met`` / ``not met`` / ``no data`` for a value against a goal limit."""
    if value is None:
        return "no data"
    if value == limit:
        return "met" if inclusive else "not met"
    ok = value > limit if higher_is_better else value < limit
    return "met" if ok else "not met"


def parse_cpuinfo(text: str) -> dict[str, Any]:
    """CPU model, logical CPUs, physical cores and the interesting flags from ``/proc/cpuinfo`` text."""
    model = ""
    flags: set[str] = set()
    logical = 0
    cores_per_socket = 0
    sockets: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "processor":
            logical += 1
        elif key == "model name" and not model:
            model = value
        elif key == "flags" and not flags:
            flags = set(value.split())
        elif key == "cpu cores" and not cores_per_socket:
            cores_per_socket = int(value) if value.isdigit() else 0
        elif key == "physical id":
            sockets.add(value)
    return {
        "model": model or "unknown",
        "logical_cpus": logical,
        "physical_cores": cores_per_socket * max(len(sockets), 1) if cores_per_socket else None,
        "flags": [f for f in INTERESTING_FLAGS if f in flags],
        "vnni": any("vnni" in f for f in flags),
        "amx": any(f.startswith("amx") for f in flags),
    }


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages, rounded."""
    return [round(x, 2) for x in os.getloadavg()]


def machine_info() -> dict[str, Any]:
    """What the numbers depend on: CPU and its flags, cores usable here, memory, OS, load."""
    cpuinfo = Path("/proc/cpuinfo")
    cpu = parse_cpuinfo(cpuinfo.read_text(encoding="utf-8")) if cpuinfo.is_file() else {}
    mem_gib = None
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / (1 << 20), 1)
    return {
        "cpu": cpu,
        "usable_cpus": len(os.sched_getaffinity(0)),
        "memory_gib": mem_gib,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load_average": load_average(),
        # Set on some CPUs here for old OpenBLAS builds; recorded because they change numpy's kernels.
        "env": {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ},
    }


_VERSIONS_SNIPPET = """
import json, sys
from importlib import metadata
out = {"python": sys.version.split()[0]}
for name in sys.argv[1:]:
    try:
        out[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
        pass
print(json.dumps(out))
"""


def library_versions(python: Path, packages: Sequence[str] = VERSION_PACKAGES) -> dict[str, str]:
    """Installed versions of ``packages`` in the venv of ``python`` (absent ones are left out)."""
    if not python.exists():
        return {}
    done = subprocess.run(
        [str(python), "-c", _VERSIONS_SNIPPET, *packages],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    result: dict[str, str] = json.loads(done.stdout)
    return result


@dataclass
class Timed:
    """One timed command: wall seconds (from just before the process starts to its exit)."""

    command: list[str]
    wall_s: float
    returncode: int
    log: Path | None
    load_before: list[float]
    load_after: list[float]

    def to_json(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "wall_s": round(self.wall_s, 3),
            "returncode": self.returncode,
            "log": str(self.log) if self.log else None,
            "load_before": self.load_before,
            "load_after": self.load_after,
        }


def bench_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment plus :data:`BENCH_ENV` (and ``extra``)."""
    env = dict(os.environ)
    env.update(BENCH_ENV)
    env.update(extra or {})
    return env


def run_timed(
    command: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
    timeout_s: float = 3600,
) -> Timed:
    """Run ``command`` to completion and time it with ``time.perf_counter``; output goes to ``log``."""
    load_before = load_average()
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w", encoding="utf-8") as out:
            start = time.perf_counter()
            done = subprocess.run(
                list(command),
                cwd=cwd,
                env=dict(env or bench_env()),
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
                timeout=timeout_s,
            )
            wall = time.perf_counter() - start
    else:
        start = time.perf_counter()
        done = subprocess.run(
            list(command),
            cwd=cwd,
            env=dict(env or bench_env()),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
            timeout=timeout_s,
        )
        wall = time.perf_counter() - start
    return Timed(list(command), wall, done.returncode, log, load_before, load_average())


def tail(path: Path | None, lines: int = 15) -> str:
    """The last ``lines`` lines of a log file (for error messages)."""
    if path is None or not path.is_file():
        return ""
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def prepare_workdir(example: Path, work: Path) -> Path:
    """A fresh copy of an example folder: files copied, sub-folders (the model) linked, caches left out.

    Each tool runs in its own copy, so neither sees the other's caches (the user_script keeps its
    fp32 reference embeddings in ``.fidelity_cache`` beside itself).
    """
    skip = {"__pycache__", ".fidelity_cache", ".olivine-cache", "olivine-output", ".olive-cache"}
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    for item in sorted(example.iterdir()):
        if item.name in skip or item.name.startswith("."):
            continue
        if item.is_dir():
            (work / item.name).symlink_to(item.resolve(), target_is_directory=True)
        else:
            shutil.copy2(item, work / item.name)
    return work


def dir_size(path: Path) -> int:
    """Bytes of every file under ``path`` (symlinks not followed)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


# Sections of BENCHMARKS.md written by single-purpose scripts (bench/model_builder.py, bench/pass_table.py)
# sit between these markers; run_all.py's re-render keeps them (carry_doc_blocks).
_BLOCK_START = "<!-- bench:{name} -->"
_BLOCK_END = "<!-- /bench:{name} -->"


def doc_block(name: str, markdown: str) -> str:
    """``markdown`` wrapped in the markers of block ``name``."""
    body = markdown.strip("\n")
    return f"{_BLOCK_START.format(name=name)}\n{body}\n{_BLOCK_END.format(name=name)}"


def replace_doc_block(text: str, name: str, markdown: str) -> str:
    """``text`` with block ``name`` replaced by ``markdown`` (appended at the end when absent)."""
    start, end = _BLOCK_START.format(name=name), _BLOCK_END.format(name=name)
    block = doc_block(name, markdown)
    if start in text and end in text[text.index(start) :]:
        head, rest = text.split(start, 1)
        return head + block + rest.split(end, 1)[1]
    return text.rstrip("\n") + "\n\n" + block + "\n"


def doc_blocks(text: str) -> dict[str, str]:
    """The blocks in ``text`` by name (the whole block, markers included)."""
    import re

    found = re.finditer(r"<!-- bench:([\w-]+) -->\n.*?<!-- /bench:\1 -->", text, flags=re.S)
    return {m.group(1): m.group(0) for m in found}


def carry_doc_blocks(old: str, new: str) -> str:
    """``new`` plus every block of ``old`` that ``new`` does not have (a re-render keeps other scripts'
    sections)."""
    have = doc_blocks(new)
    for name, block in doc_blocks(old).items():
        if name not in have:
            new = new.rstrip("\n") + "\n\n" + block + "\n"
    return new


def write_doc_block(name: str, markdown: str, doc: Path = DOC) -> None:
    """Replace (or add) block ``name`` of ``BENCHMARKS.md``."""
    text = doc.read_text(encoding="utf-8") if doc.is_file() else ""
    doc.write_text(replace_doc_block(text, name, markdown), encoding="utf-8")


def write_doc(text: str, doc: Path = DOC) -> None:
    """Write a freshly rendered ``BENCHMARKS.md``, keeping the blocks other bench scripts wrote."""
    if doc.is_file():
        text = carry_doc_blocks(doc.read_text(encoding="utf-8"), text)
    doc.write_text(text, encoding="utf-8")
