"""Where a fresh process spends the example's input-model evaluation (cProfile, top functions).

    .venv/bin/python bench/profile_evaluation.py [--config examples/minilm/config.json] [--top 25]

Run it in a fresh process: most of the time is the first import of torch and transformers.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from pathlib import Path

from common import REPO


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "examples" / "minilm" / "config.json")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()

    from olivine.engine.identity import handle_from_input_config
    from olivine.engine.resolve import load_workflow
    from olivine.evaluate.evaluator import evaluate_model

    workflow = load_workflow(args.config)
    assert workflow.evaluator is not None, "the config has no evaluator"
    model = handle_from_input_config(workflow.config.input_model)
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    results = evaluate_model(
        model,
        workflow.evaluator,
        data_configs=workflow.data_configs,
        accelerator=workflow.accelerator,
        tokenizer_path=model.model_path,
        base_dir=workflow.base_dir,
        input_model=model,
    )
    profile.disable()
    print(f"input-model evaluation: {time.perf_counter() - start:.1f} s; {len(results)} metric value(s)")
    pstats.Stats(profile).sort_stats("cumulative").print_stats(args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
