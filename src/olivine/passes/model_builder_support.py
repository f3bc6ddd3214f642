"""What onnxruntime-genai's model builder builds: the Hugging Face architectures it takes (read from the
installed builder, which picks its model class by ``config.json``'s ``architectures[0]``), and the builds
of a builder version known to give a wrong model, refused before building instead of passing a model
that loads and then answers wrongly."""

from __future__ import annotations

import difflib
import json
import re
from functools import lru_cache
from pathlib import Path

_ARCHITECTURE_TEST = re.compile(r"architectures\[0\]\s*==\s*[\"'](\w+)[\"']")

#: builder version prefix -> (architecture, precision or None for every one) -> what goes wrong. Each was
#: found by comparing the builder's output on small random models with PyTorch, and is the same when the
#: builder is called directly.
KNOWN_WRONG: dict[str, dict[tuple[str, str | None], str]] = {
    "0.15.": {
        ("OlmoForCausalLM", None): (
            "builds OLMo's weightless LayerNorm (epsilon 1e-5) as an RMSNorm (epsilon 1e-6): the logits are "
            "wrong (max abs difference 1.5 against PyTorch on a random model)"
        ),
        ("GptOssForCausalLM", "int8"): (
            "stores gpt-oss's int8 expert weights signed where onnxruntime's CPU QMoE kernel reads them "
            "unsigned: the output is wrong (cosine 0.59 against PyTorch); int4 and fp32 are right"
        ),
        ("Lfm2ForCausalLM", None): (
            "reads LFM2's rope_parameters, which only transformers 5 configs have: every build fails"
        ),
    }
}


@lru_cache(maxsize=1)
def builder_architectures() -> tuple[str, ...]:
    """The architectures the installed builder's ``create_model`` dispatches on (empty if unreadable)."""
    import inspect

    from onnxruntime_genai.models import builder

    try:
        return tuple(sorted(set(_ARCHITECTURE_TEST.findall(inspect.getsource(builder)))))
    except (OSError, TypeError):
        return ()


def builder_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("onnxruntime-genai")
    except PackageNotFoundError:
        return "unknown"


def architecture_problem(folder: Path, precision: str) -> str | None:
    """Why the builder cannot build the model in ``folder`` at ``precision`` correctly, or None."""
    try:
        data = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as exc:
        return f"{folder / 'config.json'} cannot be read: {exc}"
    architectures = data.get("architectures") if isinstance(data, dict) else None
    if not isinstance(architectures, list) or not architectures or not isinstance(architectures[0], str):
        return (
            f"{folder / 'config.json'} has no 'architectures' list: the model builder picks what it builds "
            'by architectures[0] (e.g. "LlamaForCausalLM")'
        )
    name = architectures[0]
    version = builder_version()
    known = builder_architectures()
    if known and name not in known:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return (
            f"config.json architectures[0] '{name}' is not one onnxruntime-genai {version}'s model builder "
            f"builds{hint}; it builds: {', '.join(known)}"
        )
    for prefix, wrong in KNOWN_WRONG.items():
        if not version.startswith(prefix):
            continue
        for (architecture, only_at), why in wrong.items():
            if architecture == name and only_at in (None, precision):
                at = f" at precision {precision}" if only_at else ""
                return f"'{name}'{at} is refused: onnxruntime-genai {version}'s model builder {why}"
    return None
