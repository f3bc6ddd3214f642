"""The output folder: the best model, its config and metrics, a footprint of every model, a history.

<output_dir>/model/...                  the best model's files
<output_dir>/model_config.json          loadable as an ``input_model`` (model_path relative to it)
<output_dir>/metrics.json               the best model's metrics
<output_dir>/input_model_metrics.json   the input model's metrics (when evaluated)
<output_dir>/footprint.json             every candidate (see olivine.engine.footprint), written by the engine
<output_dir>/run_history.txt            a readable table of the same
<output_dir>/.olivine-digests.json      sha256 and stat of the model's files (see olivine.digests)
<output_dir>/<name>.zip                 with Olive's ``packaging_config`` (see olivine.engine.packaging)

The model files are a byte copy of the best run's, whose sha256 the cache recorded at commit; the
records are carried over to the copies so exporting the output folder does not hash them again.

As in Olive (>= 0.10), an ``output_dir`` ending in ``.onnx`` (and not an existing folder) names the output
model file itself: an ONNX best model is written there (external data beside it) and everything else goes
to its folder (:func:`output_layout`). ``no_artifacts: true`` writes only the model and
``model_config.json`` (Olive skips the footprints, metrics and history files too). The output is
self-contained: when the input was a Hugging Face model, its tokenizer, config and processor files are
copied beside the output model, and the model's ``hf_model_path`` attribute points at that copy, not at
the input folder (or a remote job's bundle).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from olivine.digests import DIGESTS_NAME, carry_digests, read_digests, write_digests
from olivine.engine.cache import write_json_atomic, write_text_atomic
from olivine.engine.candidates import Candidate
from olivine.errors import CacheError, WorkflowError
from olivine.model.handle import ModelHandle
from olivine.output_names import HF_COMPANION_FILES, RECORD_NAMES

if TYPE_CHECKING:
    from olivine.engine.resolve import ResolvedWorkflow

logger = logging.getLogger(__name__)


def output_layout(out_dir: Path) -> tuple[Path, Path | None]:
    """(folder for the artifacts, the model file ``output_dir`` names or None), as Olive reads output_dir."""
    if out_dir.suffix.lower() == ".onnx" and not out_dir.is_dir():
        return out_dir.parent, out_dir
    return out_dir, None


def write_outputs(
    workflow: ResolvedWorkflow,
    best: Candidate | None,
    input_model: Candidate,
    candidates: list[Candidate],
    out_dir: Path,
) -> None:
    out_dir, model_file = output_layout(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    no_artifacts = workflow.config.engine.no_artifacts
    best_id = best.id if best else None
    # Records of an earlier model here would describe files about to be replaced.
    (out_dir / DIGESTS_NAME).unlink(missing_ok=True)
    if best is not None and best.model is not None:
        if model_file is not None and best.model.kind == "onnx":
            final = _publish_onnx(best.model, model_file)
            companions_dir = model_file.parent
        else:
            model_dir = out_dir / "model"
            staging = out_dir / ".model.tmp"
            if staging.is_symlink() or staging.is_file():
                staging.unlink()
            shutil.rmtree(staging, ignore_errors=True)
            copied = copy_model(best.model, staging)
            if model_dir.is_symlink() or model_dir.is_file():  # not ours to follow: replaced
                model_dir.unlink()
            shutil.rmtree(model_dir, ignore_errors=True)
            staging.rename(model_dir)
            _carry_model_digests(best, model_dir, out_dir)
            final = copied.with_config(
                model_path=str(model_dir / Path(str(copied.model_path)).relative_to(staging))
            )
            companions_dir = model_dir
        if best is not input_model and input_model.model is not None:
            final = _with_hf_companions(final, input_model.model, companions_dir)
        write_json_atomic(out_dir / "model_config.json", final.to_json(relative_to=out_dir))
        if not no_artifacts:
            write_json_atomic(out_dir / "metrics.json", best.metrics_json() or {})
        packagings = workflow.config.engine.packagings
        if packagings and best is not input_model:  # Olive packages pass outputs only
            from olivine.engine.packaging import write_packages

            write_packages(
                packagings,
                best=best,
                model=final,
                input_model=input_model,
                accelerator=workflow.accelerator,
                out_dir=out_dir,
            )
    if no_artifacts:
        return
    if input_model.metrics is not None:
        write_json_atomic(out_dir / "input_model_metrics.json", input_model.metrics_json())
    write_text_atomic(out_dir / "run_history.txt", history_table(input_model, candidates, best_id))


def metric_names(rows: list[Candidate]) -> list[str]:
    names: list[str] = []
    for row in rows:
        for name in row.metrics or {}:
            if name not in names:
                names.append(name)
    return names


def format_value(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("value")
    if hasattr(value, "value"):
        value = value.value
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 100 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "-" if value is None else str(value)


def history_table(input_model: Candidate, candidates: list[Candidate], best_id: str | None) -> str:
    """A readable table: one row per candidate (``best_id`` is a candidate id)."""
    rows = [input_model, *candidates]
    metrics = metric_names(rows)
    header = ["id", "chain", "pass", "status", "model id", *metrics, "best"]
    lines = [header]
    for row in rows:
        status = "-" if row.id == "input" else row.status
        lines.append(
            [row.id, row.label, row.pass_type or "-", status, (row.model_id or "-")[:12]]
            + [format_value((row.metrics or {}).get(m)) for m in metrics]
            + ["*" if row.id == best_id else ""]
        )
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    rendered = [
        "  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(line)).rstrip() for line in lines
    ]
    rendered.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(rendered) + "\n"


def copy_model(model: ModelHandle, dest: Path) -> ModelHandle:
    """Copy a model's files into ``dest`` and return the handle pointing there."""
    if model.model_path is None:
        return model
    src = Path(model.model_path)
    if not model.files():
        # The run's folder vanished after it was evaluated (e.g. another run with clean_cache on the
        # same cache_dir): an empty output must never pass for the best model.
        raise CacheError(f"the best model's files are gone from {src}; was the cache cleaned meanwhile?")
    if src.is_dir():
        shutil.copytree(src, dest, dirs_exist_ok=True)
        return model.with_config(model_path=str(dest))
    dest.mkdir(parents=True, exist_ok=True)
    for file in model.files():  # external data keeps its place relative to the model file
        target = dest / file.relative_to(src.parent)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, target)
    return model.with_config(model_path=str(dest / src.name))


def _publish_onnx(model: ModelHandle, target: Path) -> ModelHandle:
    """Copy an ONNX model to the file ``target`` (its external data files beside it, names kept)."""
    source = model.onnx_path
    beside = sorted(file.relative_to(source.parent).as_posix() for file in model.files() if file != source)
    # A model folder's own tokenizer and config files may join it there (they are what the companions are).
    taken = RECORD_NAMES | {target.name, f".{target.name}.tmp"}
    clashes = [name for name in beside if name.split("/")[0] in taken]
    if clashes:
        # The output folder also holds Olivine's records: one would overwrite the other. The model stays
        # in the cache (a run with another output_dir takes it from there).
        raise WorkflowError(
            f"output_dir {target} names a model file, but the model's external data file(s) "
            f"{', '.join(repr(n) for n in clashes)} would collide with the files written beside it; "
            "let output_dir name a folder, or give the pass another external_data_name"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    for file in model.files():
        if file != source:
            beside_target = target.parent / file.relative_to(source.parent)
            beside_target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, beside_target)
    staging = target.with_name(f".{target.name}.tmp")
    shutil.copy2(source, staging)
    staging.replace(target)
    config = {k: v for k, v in model.config.items() if k != "onnx_file_name"}
    return ModelHandle(kind="onnx", config={**config, "model_path": str(target)})


def _with_hf_companions(model: ModelHandle, input_model: ModelHandle, dest: Path) -> ModelHandle:
    """Copy the HF input's tokenizer/config files to ``dest``; point ``hf_model_path`` there."""
    if input_model.kind == "hf":
        source = input_model.model_path
    else:
        source = input_model.attributes.get("hf_model_path")
    if model.kind == "hf" or not source or not Path(str(source)).is_dir():
        return model
    copied = False
    for name in HF_COMPANION_FILES:
        src = Path(str(source)) / name
        if src.is_file() and not (dest / name).exists():
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
            copied = True
    if not copied and not (dest / "config.json").is_file():
        return model
    attributes = {**model.attributes, "hf_model_path": str(dest)}
    if attributes.get("_name_or_path") == str(source):  # transformers' record of where it loaded from
        attributes["_name_or_path"] = str(dest)
    return model.with_config(model_attributes=attributes)


def _carry_model_digests(best: Candidate, model_dir: Path, out_dir: Path) -> None:
    """Record the copied model files' sha256, taken from the best run's records (no hashing)."""
    if best.run_dir is None or best.model is None or best.model.model_path is None:
        return
    source = {best.run_dir / rel: record for rel, record in read_digests(best.run_dir).items()}
    src = Path(best.model.model_path)
    if src.is_dir():
        pairs = {model_dir / f.relative_to(src): f for f in src.rglob("*") if f.is_file()}
    else:
        pairs = {model_dir / f.relative_to(src.parent): f for f in best.model.files()}
    carried = carry_digests(pairs, source)
    if not carried:
        return
    try:
        write_digests(out_dir, {path.relative_to(out_dir).as_posix(): rec for path, rec in carried.items()})
    except OSError as exc:  # only an optimisation: without records the export hashes the files
        logger.warning("could not record the digests of %s: %s", model_dir, exc)
