"""The MiniLM example's fidelity script tokenizes with the model's ``tokenizer.json`` through the
``tokenizers`` library (slow tier: needs the example's weights): the same ids as transformers' fast
tokenizer, without importing transformers or torch."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "minilm"
KEYS = ("input_ids", "attention_mask", "token_type_ids")


@pytest.fixture(scope="module")
def script() -> Iterator[Any]:
    subprocess.run([sys.executable, str(EXAMPLE / "prepare.py")], check=True)
    sys.path.insert(0, str(EXAMPLE))
    try:
        import user_script

        yield user_script
    finally:
        sys.path.remove(str(EXAMPLE))
        sys.modules.pop("user_script", None)


def test_example_tokenizer_gives_transformers_ids(script: Any) -> None:
    from transformers import AutoTokenizer

    folder = (EXAMPLE / "model").resolve()
    sentences = script._sentences(EXAMPLE / "data" / "sentences.txt", None)
    size = script.BATCH_SIZE
    reference = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    encode = script._tokenizer(folder)
    batches = [sentences[i : i + size] for i in range(0, len(sentences), size)]
    batches.append(["word " * 400, "a short one"])  # truncated at 128, and padded to the longest
    for batch in batches:
        want = reference(batch, padding="longest", truncation=True, max_length=128, return_tensors="np")
        got = encode(batch)
        for key in KEYS:
            assert got[key].dtype == np.int64 and np.array_equal(got[key], want[key]), key


def test_example_tokenizer_imports_neither_transformers_nor_torch() -> None:
    code = (
        "import json, sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); import user_script;"
        " out = user_script._tokenizer(Path(sys.argv[1], 'model').resolve())(['hello there'] * 2);"
        " print(json.dumps([out['input_ids'].shape[1], 'transformers' in sys.modules, 'torch' in sys.modules]))"
    )
    subprocess.run([sys.executable, str(EXAMPLE / "prepare.py")], check=True)
    done = subprocess.run(
        [sys.executable, "-c", code, str(EXAMPLE)], capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [4, False, False]
