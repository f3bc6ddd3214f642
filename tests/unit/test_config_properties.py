"""Property: a mutated run config always ends in one clear error line, exit 2, and nothing submitted.

Each example starts from a valid workflow submitted to a LocalWorker and applies one mutation that makes
it invalid (unknown key, wrong type, missing key, missing file, bad reference, NaN/inf/huge/negative
number, odd unicode, binary file). The command is the real ``olivine run`` (in this process), and the
job store and the datastore are checked to be untouched.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from olivine.cli.main import main
from tiny_models import write_onnx_mlp

BASE: dict[str, Any] = {
    "workflow_id": "wf",
    "input_model": {"type": "ONNXModel", "model_path": "m.onnx"},
    "systems": {"lw": {"type": "LocalWorker", "cancel_grace_s": 5}},
    "workflow_host": "lw",
    "evaluators": {
        "ev": {"metrics": [{"name": "lat", "type": "latency", "sub_types": [{"name": "avg", "priority": 1}]}]}
    },
    "passes": {"q": {"type": "OnnxDynamicQuantization", "per_channel": False}},
    "evaluator": "ev",
    "cache_dir": "c",
    "output_dir": "o",
}

# Paths of mappings in BASE where an unknown key is an error, and typed leaves with a wrong-typed value.
MAPPINGS = [(), ("input_model",), ("systems", "lw"), ("passes", "q"), ("evaluators", "ev")]
WRONG_TYPES: list[tuple[tuple[str | int, ...], Any]] = [
    (("input_model",), "m.onnx"),
    (("input_model", "model_path"), 12),
    (("systems", "lw", "cancel_grace_s"), "soon"),
    (("passes", "q", "per_channel"), "maybe"),
    (("passes",), ["q"]),
    (("evaluators", "ev", "metrics"), {"lat": 1}),
    (("workflow_host",), 3),
    (("cache_dir",), ["c"]),
]
NUMBERS: list[tuple[str | int, ...]] = [
    ("systems", "lw", "cancel_grace_s"),
    ("evaluators", "ev", "metrics", 0, "sub_types", 0, "priority"),
]
BAD_NUMBERS = [math.nan, math.inf, -math.inf, -5.0, 1e308 * 10]
REFERENCES: list[tuple[tuple[str | int, ...], Any]] = [
    (("workflow_host",), "nowhere"),
    (("evaluator",), "no_such_evaluator"),
    (("passes", "q", "type"), "NoSuchPass"),
    (("input_model", "type"), "NotAModel"),
    (("systems", "lw", "type"), "NoSuchSystem"),
]
ODD_IDS = [
    "",
    " ",
    "../up",
    "a/b",
    "wf\x00",
    "\u202ewf",
    "w" * 300,
    "é" * 10,
    "-lead",
    ".hidden",
    "\U0001f600",
]


def _set(cfg: dict[str, Any], path: tuple[str | int, ...], value: Any) -> None:
    node: Any = cfg
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


@st.composite
def mutations(draw: st.DrawFn) -> tuple[str, Any]:
    """(kind, mutated config or raw bytes)."""
    cfg = copy.deepcopy(BASE)
    kind = draw(
        st.sampled_from(["unknown", "type", "missing", "file", "reference", "number", "unicode", "binary"])
    )
    if kind == "unknown":
        where = draw(st.sampled_from(MAPPINGS))
        key = draw(st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=12))
        node: Any = cfg
        for part in where:
            node = node[part]
        if key in node or key in _KNOWN_KEYS:
            key = f"zz_{key}"
        node[key] = draw(st.one_of(st.integers(), st.text(max_size=5), st.none()))
    elif kind == "type":
        path, value = draw(st.sampled_from(WRONG_TYPES))
        _set(cfg, path, value)
    elif kind == "missing":
        del cfg[draw(st.sampled_from(["input_model"]))]
    elif kind == "file":
        _set(cfg, ("input_model", "model_path"), draw(st.sampled_from(["missing.onnx", "no/such/dir"])))
    elif kind == "reference":
        path, value = draw(st.sampled_from(REFERENCES))
        _set(cfg, path, value)
    elif kind == "number":
        _set(cfg, draw(st.sampled_from(NUMBERS)), draw(st.sampled_from(BAD_NUMBERS)))
    elif kind == "unicode":
        cfg["workflow_id"] = draw(st.sampled_from(ODD_IDS))
    else:
        raw = draw(st.binary(min_size=1, max_size=64))
        return kind, b"\xff\xfe" + raw  # never valid UTF-8 JSON
    return kind, cfg


# Keys the models know anywhere (a drawn "unknown" key must not be one of them by chance).
_KNOWN_KEYS = {
    "type", "config", "model_path", "workflow_id", "systems", "evaluators", "passes", "engine", "evaluator",
    "cache_dir", "output_dir", "metrics", "name", "datastores", "accelerators", "python", "host", "target",
    "input_model", "workflow_host", "data_configs", "azureml_client", "per_channel", "disable_search",
}  # fmt: skip


@contextlib.contextmanager
def _home(path: Path) -> Iterator[None]:
    old = os.environ.get("OLIVINE_HOME")
    os.environ["OLIVINE_HOME"] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("OLIVINE_HOME", None)
        else:
            os.environ["OLIVINE_HOME"] = old


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    write_onnx_mlp(tmp_path / "m.onnx")
    return tmp_path


def _run(config_file: Path) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["run", "--config", str(config_file)])
    return code, err.getvalue()


def test_base_config_is_valid(workdir: Path) -> None:
    """The property below is only meaningful if the unmutated config passes validation."""
    (workdir / "cfg.json").write_text(json.dumps(BASE))
    err = io.StringIO()
    with _home(workdir / "home"), contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["run", "--config", str(workdir / "cfg.json"), "--dry-run"])
    assert code == 0, err.getvalue()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutation=mutations())
def test_mutated_config_is_one_clear_line_exit_2_nothing_submitted(
    workdir: Path, mutation: tuple[str, Any]
) -> None:
    kind, cfg = mutation
    config_file = workdir / "cfg.json"
    if isinstance(cfg, bytes):
        config_file.write_bytes(cfg)
    else:
        # allow_nan: Python's json writes NaN/Infinity, which json.loads reads back (as Olive's would).
        config_file.write_text(json.dumps(cfg, allow_nan=True))
    home = workdir / "home"
    with _home(home):
        code, stderr = _run(config_file)
    lines = stderr.strip().splitlines()
    assert code == 2, (kind, cfg, stderr)
    assert len(lines) == 1, (kind, stderr)
    assert lines[0].startswith("olivine: error: "), stderr
    assert str(config_file) in lines[0] or "cfg.json" in lines[0], stderr
    assert "Traceback" not in stderr and "internal error" not in stderr
    # Nothing submitted: no job folder, no export.
    assert not (home / "jobs").exists() or not any((home / "jobs").iterdir())
    assert not (home / "datastore").exists() or not any((home / "datastore").iterdir())
