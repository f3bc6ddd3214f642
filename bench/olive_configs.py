"""Run Microsoft Olive's own run configs through Olivine, with only the model source swapped.

Usage::

    python bench/olive_configs.py collect --work DIR [--olive GIT] [--recipes GIT] [--refs R,..] [--generate]
    python bench/olive_configs.py run --work DIR [--e2e] [--limit N] [--only SUBSTR] [--json OUT]

``collect`` reads the git snapshots of github:microsoft/Olive (every release tag's examples, tests and docs)
and github:microsoft/olive-recipes (as fetched by the session's ``fetch`` tool, bare git dirs), keeps every
JSON/YAML file that is a run config (``input_model`` + ``passes``), and every ```json / ```yaml block of a
Markdown page that is one (Olive's docs), deduplicated by content, extracts the
files of its folder (user scripts, data files) beside it, and writes the config with its model source
swapped for a tiny local model built in code (``tests/tiny_models.py``): an ``HfModel`` gets a tiny BERT
(or a tiny Llama for text-generation tasks), a ``PyTorchModel`` a tiny MLP script that defines the
loader/io_config/dummy-inputs functions the config names, an ``ONNXModel`` a tiny ONNX MLP. A stand-in
takes the input names the config's GraphSurgeries name (``RenameInputs``, ``RenameInputDims``), and a
``zero-shot-image-classification`` HfModel is a tiny CLIP. Nothing else changes: data, metrics, passes,
systems and engine keys are Olive's own. ``--generate`` also runs the example scripts that write their
configs from a template (llama2, phi2, phi3, bert: :data:`GENERATORS`) in Olive's venv, without running
Olive, and collects what they write.

``run`` validates each config as ``olivine run --dry-run`` does (``olivine.api.load``) and, with ``--e2e``,
runs those that validated end to end (``olivine run --local`` in a subprocess, with a timeout). It prints
one line per config and the counts: ran / refused (at validation, with the one-line reason) / failed
(validated, then failed at run time: the gaps the compat issue closes). Refusals are grouped by reason.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
MIRRORS = Path("/work/.mirror")
OLIVE_GIT = MIRRORS / "microsoft+Olive" / "repo"
RECIPES_GIT = MIRRORS / "microsoft+olive-recipes" / "repo"
#: Olive refs read: each release tag that still had examples in the repository, and HEAD.
OLIVE_REFS = ("HEAD", "v0.13.0", "v0.9.2", "v0.8.0", "v0.7.0", "v0.6.0", "v0.4.0", "v0.2.0")
_MAX_EXTRACT_BYTES = 2_000_000
_TEXT_GENERATION = ("text-generation", "text-generation-with-past", "text2text-generation")


def _git(gitdir: Path, *args: str) -> bytes:
    return subprocess.run(["git", f"--git-dir={gitdir}", *args], check=True, capture_output=True).stdout


def _tree(gitdir: Path, ref: str) -> list[tuple[str, str, int]]:
    """(path, blob sha, size) of every file at ``ref``."""
    out = _git(gitdir, "ls-tree", "-r", "-l", ref).decode("utf-8", "replace")
    rows = []
    for line in out.splitlines():
        meta, _, path = line.partition("\t")
        parts = meta.split()
        if len(parts) == 4 and parts[1] == "blob" and parts[3] != "-":
            rows.append((path, parts[2], int(parts[3])))
    return rows


def _parse(path: str, text: bytes) -> Any:
    try:
        if path.endswith((".yaml", ".yml")):
            import yaml

            return yaml.safe_load(text)
        return json.loads(text)
    except Exception:
        return None


#: Besides ``input_model``, one of these makes a file a run config: Olive runs a config without passes too
#: (it evaluates the input model: the recipes' ``*_with_eval`` baselines and ``eval/*.json``).
_RUN_KEYS = ("passes", "pass_flows", "evaluators", "evaluator", "engine", "metrics")


def _is_run_config(data: Any) -> bool:
    return isinstance(data, dict) and "input_model" in data and any(k in data for k in _RUN_KEYS)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:150]


# ---------------------------------------------------------------------------------------------- tiny models


def _tiny_models(work: Path) -> dict[str, dict[str, Any]]:
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT / "src"))
    import tiny_llm
    import tiny_models

    tiny = work / "tiny"
    marker = tiny / "models.json"
    models: dict[str, dict[str, Any]] = json.loads(marker.read_text()) if marker.is_file() else {}
    writers = {
        "bert": lambda: tiny_models.write_tiny_bert(tiny / "bert", max_positions=512),
        # A byte-level BPE tokenizer (onnxruntime-genai loads it; not the BERT WordPiece one) and dims that
        # int4 block sizes up to 128 divide (the key/value projections too: 2 heads of 64).
        "llama": lambda: tiny_llm.write_causal_lm(
            tiny / "llama256",
            hidden_size=256,
            intermediate_size=512,
            num_heads=4,
            num_kv_heads=2,
            max_positions=1024,
        ),
        "onnx": lambda: tiny_models.write_onnx_mlp(tiny / "onnx"),
        "mlp": lambda: tiny_models.write_mlp(tiny / "mlp"),
        # zero-shot-image-classification (Olive's CLIP examples): Olive's io_config shapes, 77 tokens and
        # 224-pixel images.
        "clip": lambda: _write_tiny_clip(tiny / "clip"),
    }
    if models.get("llama", {}).get("model_path", "").endswith("/llama"):
        del models["llama"]  # the earlier stand-in (key/value projections of 64: int4 block 128 fails)
    missing = [name for name in writers if name not in models]
    for name in missing:
        models[name] = writers[name]()
    if missing:
        marker.write_text(json.dumps(models, indent=2))
    return models


def _write_tiny_clip(folder: Path) -> dict[str, Any]:
    import torch
    from transformers import CLIPConfig, CLIPModel

    import tiny_models

    tiny_models.write_tiny_bert(folder)  # the tokenizer files; the BERT weights are replaced below
    for name in ("model.safetensors", "config.json"):
        (folder / name).unlink()
    text = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
    text.update(vocab_size=200, max_position_embeddings=77)
    vision = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
    vision.update(image_size=224, patch_size=32)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16))
        model.eval().save_pretrained(str(folder))
    return {"type": "HfModel", "model_path": str(folder), "task": "zero-shot-image-classification"}


_LOADER_SCRIPT = '''"""Tiny model source for an Olive config (written by bench/olive_configs.py)."""
import torch

from tiny_mlp_base import MLP, IO_CONFIG


def _load(model_path=None, *args, **kwargs):
    return MLP()


def _io_config(model=None, *args, **kwargs):
    return IO_CONFIG


def _dummy_inputs(model=None, *args, **kwargs):
    return (torch.full((2, 32), 0.5),)

'''


_MULTI_IO_SCRIPT = '''"""Tiny model with the config's inputs and outputs (by bench/olive_configs.py)."""
import torch

INPUTS = __INPUTS__  # (name, shape, dtype)
OUTPUTS = __OUTPUTS__  # (name, shape)


class MultiIO(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(32, 32)

    def forward(self, *xs):
        base = sum(x.float().mean() for x in xs)
        return tuple(self.fc(torch.ones(shape) * base) for _, shape in OUTPUTS)


def _load(model_path=None, *args, **kwargs):
    torch.manual_seed(0)
    return MultiIO()


def _io_config(model=None, *args, **kwargs):
    return IO_CONFIG


def _dummy_inputs(model=None, *args, **kwargs):
    return tuple(torch.ones(shape, dtype=getattr(torch, dtype)) for _, shape, dtype in INPUTS)


IO_CONFIG = __IO_CONFIG__

'''


def _multi_io(io: Any) -> bool:
    """An inline io_config the tiny MLP does not fit (it has one input and one output, both 2-D)."""
    if not isinstance(io, dict) or not isinstance(io.get("input_names"), list):
        return False
    axes = [int(a) for spec in (io.get("dynamic_axes") or {}).values() for a in (spec or {})]
    # Also one input of another rank than the MLP's [batch, 32] (an image, a sequence of vectors), or a
    # given shape the MLP does not take (Olive's test mocks: [1, 2, 3]).
    shapes = [s for s in io.get("input_shapes") or [] if isinstance(s, list)]
    odd_shape = any(len(s) != 2 or s[-1] != 32 for s in shapes)
    return (
        len(io["input_names"]) != 1
        or len(io.get("output_names") or []) > 1
        or max([*axes, 0]) >= 2
        or odd_shape
    )


def _surgeon_io(config: dict[str, Any], io: Any) -> dict[str, Any] | None:
    """An io_config with the inputs the config's surgeons name, when the stand-in's would lack them (the
    real io_config comes from a function of the recipe's script, which needs the real model)."""
    wanted = surgeon_inputs(config)
    have = io.get("input_names") if isinstance(io, dict) else ["input"]
    if not wanted or set(wanted) <= set(have or []):
        return None
    return {
        "input_names": wanted,
        "output_names": ["output"],
        "dynamic_axes": {**{name: {"0": "batch"} for name in wanted}, "output": {"0": "batch"}},
    }


def _rank(name: str, io: dict[str, Any], given: Any) -> list[int]:
    if isinstance(given, list) and given:
        return [d if isinstance(d, int) and d > 0 else 2 for d in given]
    axes = (io.get("dynamic_axes") or {}).get(name) or {}
    rank = max([int(a) + 1 for a in axes] + [2])
    return [2] * (rank - 1) + [32]


def _multi_io_script(io: dict[str, Any]) -> str:
    names = io["input_names"]
    shapes = io.get("input_shapes") or [None] * len(names)
    types = io.get("input_types") or ["float32"] * len(names)
    inputs = []
    for name, shape, dtype in zip(names, shapes, types, strict=False):
        torch_type = {"int32": "int32", "int64": "int64", "float16": "float32", "bool": "bool"}.get(
            str(dtype), "float32"
        )
        inputs.append((name, _rank(name, io, shape), torch_type))
    outs = io.get("output_names") or ["output"]
    outputs = [(name, _rank(name, io, None)) for name in outs]
    tiny_io = {k: v for k, v in io.items() if k in ("input_names", "output_names", "dynamic_axes")}
    tiny_io["input_shapes"] = [shape for _, shape, _ in inputs]
    tiny_io["input_types"] = [dtype for _, _, dtype in inputs]
    return (
        _MULTI_IO_SCRIPT.replace("__INPUTS__", repr(inputs))
        .replace("__OUTPUTS__", repr(outputs))
        .replace("__IO_CONFIG__", repr(tiny_io))
    )


def _swap_pytorch(config: dict[str, Any], folder: Path, tiny: dict[str, dict[str, Any]], sha: str) -> None:
    """Point a PyTorchModel at a tiny MLP; functions the config names come from a generated script."""
    model = config["input_model"]
    cfg = model.get("config") if isinstance(model.get("config"), dict) else model
    if "hf_config" in cfg:  # Olive < 0.7: the model source is hf_config.model_name
        cfg["hf_config"]["model_name"] = tiny["bert"]["model_path"]
        cfg.pop("model_path", None)
        return
    names = {
        "model_loader": cfg.get("model_loader"),
        "io_config": cfg.get("io_config") if isinstance(cfg.get("io_config"), str) else None,
        "dummy_inputs_func": cfg.get("dummy_inputs_func"),
    }
    surgeon_io = _surgeon_io(config, cfg.get("io_config"))
    io = surgeon_io or cfg.get("io_config")
    if surgeon_io is not None and not isinstance(cfg.get("io_config"), str):
        cfg["io_config"] = surgeon_io
    multi = surgeon_io is not None or _multi_io(io)
    if not any(names.values()) and not multi:
        mlp = tiny["mlp"]
        cfg["model_path"] = mlp["model_path"]
        cfg["model_file_format"] = "PyTorch.StateDict"
        cfg["model_loader"] = mlp["model_loader"]
        cfg["model_script"] = mlp["model_script"]
        cfg.pop("script_dir", None)
        cfg.setdefault("io_config", mlp["io_config"])
        return
    body = _multi_io_script(io) if multi else _LOADER_SCRIPT
    if not names["model_loader"]:  # the config's own model file is not here: the tiny loader builds it
        names["model_loader"] = "_tiny_loader"
        cfg["model_loader"] = "_tiny_loader"
    target = {"model_loader": "_load", "io_config": "_io_config", "dummy_inputs_func": "_dummy_inputs"}
    for key, name in names.items():
        if isinstance(name, str) and name.isidentifier():
            body += f"{name} = {target[key]}\n"
    # One script per config: configs of one folder name different loaders (encoder, decoder, ...).
    script = folder / f"tiny_model_script_{sha[:10]}.py"
    script.write_text(body)
    base = Path(tiny["mlp"]["model_script"])
    (folder / "tiny_mlp_base.py").write_text(base.read_text())
    cfg["model_script"] = script.name
    cfg.pop("script_dir", None)
    if cfg.get("model_path") and Path(str(cfg["model_path"])).suffix in (".pt", ".pth", ".bin"):
        cfg["model_path"] = tiny["mlp"]["model_path"]


#: Surgeon parameters that name a graph input of the model the surgeon is given.
_SURGEON_INPUT_KEYS = {"renameinputs": "old_names", "renameinputdims": "input_name", "removeinputs": "names"}


def surgeon_inputs(config: dict[str, Any]) -> list[str]:
    """Inputs of the input model that the config's GraphSurgeries name (RenameInputDims' ``input_name``,
    RenameInputs' ``old_names``, ...), less those an earlier RenameInputs introduces: a stand-in must have
    them for the surgeries to apply."""
    passes = config.get("passes")
    found: list[str] = []
    introduced: set[str] = set()
    for entry in passes.values() if isinstance(passes, dict) else []:
        for item in entry if isinstance(entry, list) else [entry]:
            if not isinstance(item, dict) or str(item.get("type", "")).lower() != "graphsurgeries":
                continue
            for surgery in item.get("surgeries") or []:
                if not isinstance(surgery, dict):
                    continue
                key = _SURGEON_INPUT_KEYS.get(str(surgery.get("surgeon", "")).lower())
                value = surgery.get(key) if key else None
                names = value if isinstance(value, list) else [value] if isinstance(value, str) else []
                found += [n for n in names if isinstance(n, str) and n not in introduced and n not in found]
                if str(surgery.get("surgeon", "")).lower() == "renameinputs":
                    introduced |= {n for n in surgery.get("new_names") or [] if isinstance(n, str)}
    return found


def _renamed_onnx(source: Path, name: str, folder: Path, sha: str) -> Path:
    """A copy of the tiny ONNX MLP whose input is called ``name``."""
    import onnx

    proto = onnx.load(str(source / "model.onnx"))
    old = proto.graph.input[0].name
    proto.graph.input[0].name = name
    for node in proto.graph.node:
        node.input[:] = [name if i == old else i for i in node.input]
    out = folder / f"tiny_onnx_{sha[:10]}"
    out.mkdir(parents=True, exist_ok=True)
    onnx.save_model(proto, str(out / "model.onnx"))
    return out


def swap_model(config: dict[str, Any], folder: Path, tiny: dict[str, dict[str, Any]], sha: str = "x") -> str:
    """Replace the model source in ``config`` (in place); return the tiny model's kind."""
    model = config.get("input_model")
    if not isinstance(model, dict):
        return "none"
    kind = str(model.get("type", "")).lower()
    cfg = model.get("config") if isinstance(model.get("config"), dict) else model
    if kind == "hfmodel":
        task = str(cfg.get("task") or "")
        which = "llama" if task.startswith(_TEXT_GENERATION) or task == "" else "bert"
        if task == "zero-shot-image-classification":
            which = "clip"
        cfg["model_path"] = tiny[which]["model_path"]
        cfg.pop("model_name", None)
        return which
    if kind == "pytorchmodel":
        _swap_pytorch(config, folder, tiny, sha)
        return "mlp"
    if kind == "onnxmodel":
        cfg["model_path"] = tiny["onnx"]["model_path"]
        cfg["onnx_file_name"] = tiny["onnx"]["onnx_file_name"]
        wanted = surgeon_inputs(config)
        if len(wanted) == 1 and wanted != ["input"]:  # a surgeon names the real model's input
            cfg["model_path"] = str(_renamed_onnx(Path(tiny["onnx"]["model_path"]), wanted[0], folder, sha))
            cfg["onnx_file_name"] = "model.onnx"
        return "onnx"
    return kind or "none"


# ---------------------------------------------------------------------------------------------- collect


def _sources(olive: Path, recipes: Path, refs: tuple[str, ...] = OLIVE_REFS) -> list[tuple[str, Path, str]]:
    out = []
    if olive.exists():
        tags = set(_git(olive, "tag").decode().split())
        out += [("olive", olive, ref) for ref in refs if ref == "HEAD" or ref in tags]
    if recipes.exists():
        out.append(("recipes", recipes, "HEAD"))
    return out


def collect(
    work: Path, olive: Path, recipes: Path, refs: tuple[str, ...] = OLIVE_REFS, generate: bool = False
) -> int:
    tiny = _tiny_models(work)
    seen: set[str] = set()
    index: list[dict[str, Any]] = []
    for source, gitdir, ref in _sources(olive, recipes, refs):
        tree = _tree(gitdir, ref)
        by_dir: dict[str, list[tuple[str, str, int]]] = collections.defaultdict(list)
        for row in tree:
            by_dir[os.path.dirname(row[0])].append(row)
        for path, blob, size in tree:
            if not path.endswith(_CONFIG_SUFFIXES) or size > _MAX_EXTRACT_BYTES:
                continue
            for sha, data in _configs_in(gitdir, path, blob):
                if sha in seen:
                    continue
                seen.add(sha)
                seen.add(_content_id(data))  # a generated config with this content is not new
                folder = work / "src" / source / ref / os.path.dirname(path)
                _extract_dir(gitdir, by_dir[os.path.dirname(path)], folder)
                kind = swap_model(data, folder, tiny, sha)
                name = f"olivine-corpus-{sha[:10]}.json"
                (folder / name).write_text(json.dumps(data, indent=2))
                index.append(
                    {
                        "id": sha[:10],
                        "source": source,
                        "ref": ref,
                        "path": path,
                        "model": kind,
                        "config": str((folder / name).relative_to(work)),
                    }
                )
    if generate:
        index += collect_generated(work, olive, refs, seen)
    (work / "index.json").write_text(json.dumps(index, indent=2))
    print(f"collected {len(index)} run configs into {work}")
    return 0


_CONFIG_SUFFIXES = (".json", ".yaml", ".yml", ".md")
#: A fenced code block of a Markdown page (Olive's docs show whole run configs in ```json / ```yaml blocks).
_FENCE = re.compile(r"^```[ \t]*(json|yaml|yml)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _configs_in(gitdir: Path, path: str, blob: str) -> list[tuple[str, Any]]:
    """(content id, run config) of a config file, or of each run-config code block of a Markdown page."""
    text = _git(gitdir, "cat-file", "blob", blob)
    if not path.endswith(".md"):
        data = _parse(path, text)
        return [(blob, data)] if _is_run_config(data) else []
    found = []
    for match in _FENCE.finditer(text.decode("utf-8", "replace")):
        block = match.group(2)
        data = _parse(f"block.{match.group(1)}", block.encode())
        if _is_run_config(data):
            found.append((hashlib.sha1(block.encode()).hexdigest(), data))
    return found


def _extract_dir(gitdir: Path, rows: list[tuple[str, str, int]], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for path, sha, size in rows:
        dest = folder / os.path.basename(path)
        if size <= _MAX_EXTRACT_BYTES and not dest.exists():
            dest.write_bytes(_git(gitdir, "cat-file", "blob", sha))


# ---------------------------------------------------------------------------------------------- generated

#: Olive examples whose run configs a script writes from a template (the CPU variants, and a GPU one for
#: the audit): script -> argument lists. The script runs in Olive's own venv (``bench/.olive-venv``) with
#: ``olive.workflows.run`` replaced by an exit, so it writes its config and runs nothing.
GENERATORS: dict[str, tuple[tuple[str, ...], ...]] = {
    "examples/llama2/llama2.py": (
        ("--only_config",),
        ("--only_config", "--quantize", "dynamic"),
        ("--only_config", "--quantize", "blockwise"),
        ("--only_config", "--gpu"),
    ),
    "examples/llama2/llama2_model_builder.py": ((), ("--metadata-only",)),
    "examples/phi2/phi2.py": (
        ("--model_type", "cpu_fp32"),
        ("--model_type", "cpu_int4"),
        ("--model_type", "web"),
    ),
    "examples/phi3/phi3.py": (
        ("--target", "cpu", "--precision", "fp32"),
        ("--target", "cpu", "--precision", "int4"),
        ("--target", "mobile"),
    ),
    "examples/bert/bert.py": ((), ("--optimize",)),
}
OLIVE_PY = BENCH / ".olive-venv" / "bin" / "python"
#: Imported by a generator, not needed to write a config, maybe not installed in Olive's venv.
_STUBBED = ("onnxruntime_genai",)
_GENERATE = """
import runpy, sys, types
for name in {stubbed!r}:
    try:
        __import__(name)
    except ImportError:
        sys.modules[name] = types.ModuleType(name)
import olive.workflows

def _stop(*args, **kwargs):
    raise SystemExit(0)

olive.workflows.run = _stop
sys.argv = [{script!r}, *{args!r}]
runpy.run_path({script!r}, run_name="__main__")
"""


def _generated(folder: Path, script: str, args: tuple[str, ...]) -> list[tuple[str, Any]]:
    """(file name, run config) of each JSON file the generator writes or rewrites in ``folder``."""
    before = {p.name: p.read_bytes() for p in folder.glob("*.json")}
    code = _GENERATE.format(stubbed=_STUBBED, script=os.path.basename(script), args=list(args))
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    try:
        subprocess.run(
            [str(OLIVE_PY), "-c", code], cwd=folder, env=env, capture_output=True, timeout=120, check=False
        )
    except subprocess.TimeoutExpired:
        return []
    out = []
    for path in sorted(folder.glob("*.json")):
        text = path.read_bytes()
        if before.get(path.name) != text:
            data = _parse(path.name, text)
            if _is_run_config(data):
                out.append((path.name, data))
            if path.name in before:  # a template rewritten in place: keep the original for the next run
                path.write_bytes(before[path.name])
            else:
                path.unlink()
    return out


def _content_id(data: Any) -> str:
    return hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()


def collect_generated(work: Path, olive: Path, refs: tuple[str, ...], seen: set[str]) -> list[dict[str, Any]]:
    """Run the :data:`GENERATORS` of every ref in Olive's venv; index each new run config they write."""
    if not OLIVE_PY.exists() or not olive.exists():
        print(f"no Olive venv at {OLIVE_PY}: generated configs skipped")
        return []
    tiny = _tiny_models(work)
    tags = set(_git(olive, "tag").decode().split())
    index = []
    for ref in [r for r in refs if r == "HEAD" or r in tags]:
        tree = _tree(olive, ref)
        by_dir: dict[str, list[tuple[str, str, int]]] = collections.defaultdict(list)
        for row in tree:
            by_dir[os.path.dirname(row[0])].append(row)
        present = {row[0] for row in tree}
        for script, variants in GENERATORS.items():
            if script not in present:
                continue
            gen = work / "gen" / ref / os.path.dirname(script)
            _extract_dir(olive, by_dir[os.path.dirname(script)], gen)
            for args in variants:
                for name, data in _generated(gen, script, args):
                    sha = _content_id(data)
                    if sha in seen:
                        continue
                    seen.add(sha)
                    folder = work / "src" / "generated" / ref / os.path.dirname(script)
                    _extract_dir(olive, by_dir[os.path.dirname(script)], folder)
                    kind = swap_model(data, folder, tiny, sha)
                    config = folder / f"olivine-corpus-{sha[:10]}.json"
                    config.write_text(json.dumps(data, indent=2))
                    index.append(
                        {
                            "id": sha[:10],
                            "source": "generated",
                            "ref": ref,
                            "path": f"{script} {' '.join(args)} -> {name}",
                            "model": kind,
                            "config": str(config.relative_to(work)),
                        }
                    )
    print(f"generated {len(index)} run configs from {len(GENERATORS)} Olive example scripts")
    return index


# ---------------------------------------------------------------------------------------------- run


def _validate(config: Path, cpu_fallback: bool = False) -> tuple[str, str, list[str]]:
    """("ok", "", pass types) or ("refused", one-line reason, pass types)."""
    from olivine import api
    from olivine.errors import OlivineError

    types = _pass_types(config)
    try:
        api.load(config, cpu_fallback=cpu_fallback)
    except OlivineError as exc:
        return "refused", str(exc).splitlines()[0], types
    except Exception as exc:  # a crash in validation is a failure, not a refusal
        return "crashed", f"{type(exc).__name__}: {exc}".splitlines()[0], types
    return "ok", "", types


def _pass_types(config: Path) -> list[str]:
    data = _parse(str(config), config.read_bytes())
    passes = data.get("passes") or data.get("pass_flows") or {}
    out = []
    if isinstance(passes, dict):
        for entry in passes.values():
            for item in entry if isinstance(entry, list) else [entry]:
                if isinstance(item, dict):
                    out.append(str(item.get("type")))
    return out


def _run_e2e(
    config: Path, work: Path, timeout_s: float, cpu_fallback: bool = False
) -> tuple[str, str, float]:
    out = work / "runs" / config.stem
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    env["PYTHONPATH"] = str(ROOT / "src")
    cmd = [
        sys.executable,
        "-m",
        "olivine",
        "run",
        "--config",
        str(config),
        "--local",
        "--output-dir",
        str(out / "output"),
        "--cache-dir",
        str(out / "cache"),
        *(["--cpu-fallback"] if cpu_fallback else []),
    ]
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout_s, env=env, cwd=config.parent
        )
    except subprocess.TimeoutExpired:
        return "failed", f"timeout after {timeout_s:.0f} s", time.perf_counter() - start
    wall = time.perf_counter() - start
    if proc.returncode == 0:
        return "ran", "", wall
    lines = [line for line in (proc.stderr or proc.stdout).strip().splitlines() if line.strip()]
    reason = lines[-1] if lines else f"exit {proc.returncode}"
    return ("refused" if proc.returncode == 2 else "failed"), reason, wall


def run(args: argparse.Namespace) -> int:
    work = Path(args.work).resolve()
    index = json.loads(Path(args.index or work / "index.json").read_text())
    if args.only:
        index = [e for e in index if args.only in e["path"] or args.only in e["id"]]
    if args.limit:
        index = index[: args.limit]
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    rows = []
    for entry in index:
        config = work / entry["config"]
        old = Path.cwd()
        os.chdir(config.parent)
        try:
            status, reason, types = _validate(config, args.cpu_fallback)
        finally:
            os.chdir(old)
        row = dict(entry, dry_run=status, reason=reason, passes=types, outcome=status)
        if status == "ok":
            row["outcome"] = "validated"
            if args.e2e:
                outcome, why, wall = _run_e2e(config, work, args.timeout, args.cpu_fallback)
                row.update(outcome=outcome, reason=why, wall_s=round(wall, 1))
        elif status == "crashed":
            row["outcome"] = "failed"
        rows.append(row)
        print(
            f"{row['outcome']:9} {entry['source']}:{entry['ref']}:{entry['path']}  {row['reason']}"[:300],
            flush=True,
        )
    _summary(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


def _reason_key(reason: str) -> str:
    """A refusal's message without the file name and config-specific values, to group them."""
    text = reason.split(".json: ", 1)[-1].split(".yaml: ", 1)[-1]
    text = re.sub(r"'[^']*'", "'…'", text)
    return re.sub(r"\d+", "N", text)[:120]


#: Refusals that are right on this machine, by what the message says: (label, pattern).
LEGITIMATE = (
    ("removed from Olive itself", r"removed in Olive|the form of Olive [\d.]+ and before"),
    ("a format Olive 0.13 refuses too", r"Olive 0\.13 refuses it too|Olive 0\.13 requires too"),
    ("a skeleton with an empty input_model (Olive refuses it too)", r"^[^ ]*: input_model\.type: missing"),
    ("a format newer than Olive 0.13 (Olive 0.13 refuses it)", r"\(after Olive 0\.13\)"),
    (
        "needs the Hugging Face Hub (offline here)",
        r"no model hub|huggingface\.co|does not reach|not a local folder|Hub is off|cannot reach the",
    ),
    ("needs olivine[datasets] (not installed here)", r"Hugging Face datasets, which is not installed"),
    ("a list for a parameter without search (Olive refuses it too)", r"Olive refuses a list here too"),
    ("a script needs a package not installed here", r"No module named"),
    ("targets a GPU/NPU or a non-CPU execution provider", r"device '|ExecutionProvider|use_gpu|GPU|CUDA"),
    ("a system type Olivine does not run", r"system type|\(type \w+\) is valid in Olive"),
    ("a local data folder the example downloads first", r"data_dir: path '[^']*' does not exist"),
    ("an evaluator type Olivine does not have", r"evaluator type"),
    ("a KV-cache export (text-generation-with-past)", r"KV cache|kv_cache"),
    ("an unfilled template placeholder (<<...>>)", r"<<"),
    ("an Azure ML data or model resource (Olive <= 0.9)", r"an Azure ML resource"),
    ("a local file the config names is missing", r"path '[^']*' does not exist|file or folder not found"),
    (
        "a task or feature Olivine refuses at validation",
        r"is not supported by Olivine|not provided by Olivine",
    ),
)


#: A run-time failure of code Olivine does not control (a data script's ``load_dataset`` or
#: ``from_pretrained`` of a Hub name) because the Hub is off here: not a gap Olivine can close.
HUB_AT_RUN_TIME = (
    r"LocalEntryNotFoundError|offline mode is enabled|HF_HUB_OFFLINE|HF_DATASETS_OFFLINE|"
    r"couldn't connect to 'https://huggingface\.co'|Couldn't reach '[^']*' on the Hub|"
    r"is the correct path to a directory containing"
)

#: A run-time import of a package that is not installed here, inside a user script's function (its
#: top-level imports are checked at validation).
PACKAGE_AT_RUN_TIME = r"requires the \w+ library but it was not found"


#: A refusal of one option of a pass Olivine has (e.g. a GraphSurgeries surgeon not built yet).
PASS_OPTION_GAP = r"\(Olive's\) is not implemented by Olivine yet"


def category(reason: str) -> str | None:
    """The legitimate-refusal label of a one-line reason, or None (then it may be a gap)."""
    return next((label for label, pattern in LEGITIMATE if re.search(pattern, reason)), None)


def _known_passes() -> set[str]:
    from olivine.passes.base import PASSES

    return {name.lower() for name in PASSES.names()}


def _summary(rows: list[dict[str, Any]]) -> None:
    known = _known_passes()
    unknown = collections.Counter(t for r in rows for t in r["passes"] if t.lower() not in known)
    # A config without passes (evaluation only) is Olivine's too.
    ours = [r for r in rows if all(t.lower() in known for t in r["passes"])]
    print(
        f"\n{len(rows)} configs; {len(rows) - len(ours)} name a pass Olivine does not have "
        f"(top: {', '.join(f'{t} {n}' for t, n in unknown.most_common(8))})"
    )
    for r in ours:
        if r["outcome"] == "failed" and re.search(HUB_AT_RUN_TIME, r["reason"]):
            r["outcome"] = "failed-needs-hub"  # a user script fetches its data or processor from the Hub
        if r["outcome"] == "failed" and re.search(PACKAGE_AT_RUN_TIME, r["reason"]):
            r["outcome"] = "failed-needs-package"  # a user script's lazy import
        if r["outcome"] == "refused" and category(r["reason"]) is not None:
            r["outcome"] = "refused-legitimately"
        elif r["outcome"] == "refused" and re.search(PASS_OPTION_GAP, r["reason"]):
            r["outcome"] = "refused-pass-option"  # a pass's Olive option not built yet: the pass catalogue's
    counts = collections.Counter(r["outcome"] for r in ours)
    kinds = (
        "ran",
        "validated",
        "refused-legitimately",
        "refused-pass-option",
        "refused",
        "failed-needs-hub",
        "failed-needs-package",
        "failed",
    )
    print(
        f"of the {len(ours)} whose passes are all Olivine's: "
        + " / ".join(f"{k}: {counts[k]}" for k in kinds if counts[k])
    )
    legit = collections.Counter(category(r["reason"]) for r in ours if r["outcome"] == "refused-legitimately")
    if legit:
        print("\nrefused legitimately, by reason:")
        for label, n in legit.most_common():
            print(f"  {n:4}  {label}")
    for outcome in ("refused-pass-option", "refused", "failed-needs-hub", "failed-needs-package", "failed"):
        reasons = collections.Counter(_reason_key(r["reason"]) for r in ours if r["outcome"] == outcome)
        if reasons:
            print(f"\n{outcome} (gaps?), by reason:")
            for reason, n in reasons.most_common(60):
                print(f"  {n:4}  {reason}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--work", required=True)
    c.add_argument("--olive", default=str(OLIVE_GIT))
    c.add_argument("--recipes", default=str(RECIPES_GIT))
    c.add_argument("--refs", help=f"comma-separated Olive refs (default {','.join(OLIVE_REFS)})")
    c.add_argument(
        "--generate",
        action="store_true",
        help="also run the example scripts that write configs from templates (GENERATORS), in Olive's venv",
    )
    r = sub.add_parser("run")
    r.add_argument("--work", required=True)
    r.add_argument("--e2e", action="store_true", help="run end to end the configs that validate")
    r.add_argument("--timeout", type=float, default=300.0)
    r.add_argument("--limit", type=int, default=0)
    r.add_argument("--only", help="only configs whose path or id contains this")
    r.add_argument("--index", help="an index file (a subset of WORK/index.json: one chunk of a long run)")
    r.add_argument("--json", help="write every row to this file")
    r.add_argument(
        "--cpu-fallback",
        action="store_true",
        help="validate as `olivine run --cpu-fallback` does (audit: what a GPU config's CPU variant meets)",
    )
    args = parser.parse_args(argv)
    if args.command == "collect":
        work = Path(args.work).resolve()
        work.mkdir(parents=True, exist_ok=True)
        refs = tuple(args.refs.split(",")) if args.refs else OLIVE_REFS
        return collect(work, Path(args.olive), Path(args.recipes), refs, args.generate)
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
