"""The shared-artifact store: made once per key (in and across processes), failures not retried in a
process, unreadable or escaping records rebuilt, staging folders never visible."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from olivine.engine.shared import SharedStore


def _maker(calls: list[Path], content: str = "graph") -> object:
    def make(folder: Path) -> Path:
        calls.append(folder)
        (folder / "model.onnx").write_text(content)
        (folder / "model.onnx.data").write_text("weights")
        return folder / "model.onnx"

    return make


def test_shared_store_makes_an_artifact_once_per_key(tmp_path: Path) -> None:
    calls: list[Path] = []
    steps = SharedStore(tmp_path).for_model("model-a", {"onnxruntime": "1"})
    first = steps.get_or_make("prep", {"x": 1}, _maker(calls))  # type: ignore[arg-type]
    again = steps.get_or_make("prep", {"x": 1}, _maker(calls))  # type: ignore[arg-type]
    assert first == again and first.read_text() == "graph" and len(calls) == 1
    assert (first.parent / "model.onnx.data").read_text() == "weights"
    record = json.loads((first.parent / "shared.json").read_text())
    assert record["name"] == "prep" and record["model_id"] == "model-a" and record["file"] == "model.onnx"
    # Another process (a new store on the same cache) finds it; another key makes its own.
    other = SharedStore(tmp_path).for_model("model-a", {"onnxruntime": "1"})
    assert other.get_or_make("prep", {"x": 1}, _maker(calls)) == first  # type: ignore[arg-type]
    assert len(calls) == 1
    for model, params, versions in (
        ("model-b", {"x": 1}, "1"),
        ("model-a", {"x": 2}, "1"),
        ("model-a", {"x": 1}, "2"),
    ):
        steps = SharedStore(tmp_path).for_model(model, {"onnxruntime": versions})
        assert steps.get_or_make("prep", params, _maker(calls)) != first  # type: ignore[arg-type]
    assert len(calls) == 4
    assert not list((tmp_path / "shared").glob(".staging-*"))


def test_shared_store_does_not_retry_a_failed_step_in_the_same_process(tmp_path: Path) -> None:
    calls: list[int] = []

    def broken(folder: Path) -> Path:
        calls.append(1)
        raise ValueError("shape inference failed")

    store = SharedStore(tmp_path)
    for _ in range(3):
        with pytest.raises(ValueError, match="shape inference failed"):
            store.for_model("m", {}).get_or_make("prep", {}, broken)
    assert calls == [1]
    assert not [p for p in (tmp_path / "shared").iterdir()]  # nothing half-written is left
    with pytest.raises(ValueError):  # a new process tries again
        SharedStore(tmp_path).for_model("m", {}).get_or_make("prep", {}, broken)
    assert calls == [1, 1]


@pytest.mark.parametrize("record", ["{not json", json.dumps({"file": "../../outside.onnx"}), json.dumps({})])
def test_shared_store_rebuilds_an_unreadable_or_escaping_record(tmp_path: Path, record: str) -> None:
    calls: list[Path] = []
    made = SharedStore(tmp_path).for_model("m", {}).get_or_make("prep", {}, _maker(calls))  # type: ignore[arg-type]
    (tmp_path / "outside.onnx").write_text("planted")
    (made.parent / "shared.json").write_text(record)
    again = SharedStore(tmp_path).for_model("m", {}).get_or_make("prep", {}, _maker(calls, "rebuilt"))  # type: ignore[arg-type]
    assert len(calls) == 2 and again.read_text() == "rebuilt" and again.parent == made.parent


def test_shared_store_refuses_a_step_that_writes_outside_its_folder(tmp_path: Path) -> None:
    def escaping(folder: Path) -> Path:
        target = tmp_path / "elsewhere.onnx"
        target.write_text("x")
        return target

    with pytest.raises(ValueError, match="no file inside its folder"):
        SharedStore(tmp_path).for_model("m", {}).get_or_make("prep", {}, escaping)
    assert not [p for p in (tmp_path / "shared").iterdir()]


@pytest.mark.parametrize("victim", ["model.onnx", "model.onnx.data"])
def test_shared_store_rebuilds_an_artifact_whose_files_changed_and_the_audit_reports_it(
    tmp_path: Path, victim: str
) -> None:
    from olivine.engine.cache import WorkflowCache

    calls: list[Path] = []
    made = SharedStore(tmp_path / "wf").for_model("m", {}).get_or_make("prep", {}, _maker(calls))  # type: ignore[arg-type]
    path = made.parent / victim
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF  # one flipped byte, same size
    path.write_bytes(bytes(data))
    problems = WorkflowCache(tmp_path, "wf").audit()
    assert len(problems) == 1 and "shared artifact holds files that changed" in problems[0]
    again = SharedStore(tmp_path / "wf").for_model("m", {}).get_or_make("prep", {}, _maker(calls, "rebuilt"))  # type: ignore[arg-type]
    assert len(calls) == 2 and again.read_text() == "rebuilt"  # a cache miss, never the changed files
    assert WorkflowCache(tmp_path, "wf").audit() == []
    path.write_bytes(b"changed again")
    assert WorkflowCache(tmp_path, "wf").audit(fix=True) and not made.parent.exists()


def test_shared_store_a_concurrent_writer_of_the_same_key_loses_the_rename_and_uses_the_winner(
    tmp_path: Path,
) -> None:
    winner: list[Path] = []

    def racing(folder: Path) -> Path:
        # Another process commits the same artifact while this one is still writing its own.
        other = SharedStore(tmp_path).for_model("m", {})
        winner.append(other.get_or_make("prep", {}, _maker([], "winner")))  # type: ignore[arg-type]
        (folder / "model.onnx").write_text("loser")
        return folder / "model.onnx"

    got = SharedStore(tmp_path).for_model("m", {}).get_or_make("prep", {}, racing)
    assert got == winner[0] and got.read_text() == "winner"
    assert [p.name for p in (tmp_path / "shared").iterdir()] == [got.parent.name]  # no staging left


_SLOW_MAKER = """
import sys
import time
from pathlib import Path

from olivine.engine.shared import SharedStore


def make(folder):
    Path(sys.argv[2]).write_text("making")
    time.sleep(1.5)
    (folder / "model.onnx").write_text("first")
    return folder / "model.onnx"


SharedStore(Path(sys.argv[1])).for_model("m", {}).get_or_make("prep", {}, make)
"""


def test_shared_store_a_second_process_waits_for_the_maker_and_uses_its_artifact(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    making = tmp_path / "making"
    maker = subprocess.Popen([sys.executable, "-c", _SLOW_MAKER, str(tmp_path), str(making)])
    try:
        deadline = time.monotonic() + 60
        while not making.exists() and maker.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert making.exists()
        calls: list[Path] = []
        got = SharedStore(tmp_path).for_model("m", {}).get_or_make("prep", {}, _maker(calls, "second"))  # type: ignore[arg-type]
    finally:
        assert maker.wait(60) == 0
    assert calls == [] and got.read_text() == "first"  # made once, by the first process
