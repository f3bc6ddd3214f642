"""Workflow bundles: content-addressed copies of every local file, safe to unpack, independent of the
submitter's original paths."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest

from olivine.engine.resolve import ResolvedWorkflow, load_workflow
from olivine.errors import HostError
from olivine.jobs import bundle as bundles
from tiny_models import write_onnx_mlp


def _workflow(src: Path, **extra: Any) -> ResolvedWorkflow:
    model = write_onnx_mlp(src / "model")
    scripts = src / "scripts"
    scripts.mkdir()
    (scripts / "metric.py").write_text("def evaluate(model, data, fw):\n    return 1.0\n")
    config = {
        "workflow_id": "wf",
        "input_model": {**model, "model_path": "model"},
        "evaluators": {
            "e": {
                "user_script": "scripts/metric.py",
                "script_dir": "scripts",
                "metrics": [
                    {
                        "name": "c",
                        "type": "custom",
                        "user_config": {"user_script": "scripts/metric.py", "evaluate_func": "evaluate"},
                        "sub_types": [{"name": "v", "higher_is_better": True}],
                    }
                ],
            }
        },
        "engine": {"evaluator": "e"},
        "systems": {"w": {"type": "LocalWorker"}},
        "workflow_host": "w",
        **extra,
    }
    (src / "wf.json").write_text(json.dumps(config))
    return load_workflow(src / "wf.json")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_bundle_build_stores_each_file_once_under_its_hash(tmp_path: Path) -> None:
    wf = _workflow(tmp_path / "src")
    built = bundles.build(wf, tmp_path / "bundle")
    by_name = {e.name: e for e in built.entries}
    assert set(by_name) == {"model", "metric.py", "scripts"}
    script = by_name["metric.py"]
    # The same script is referenced twice; it is stored once and lists both keys.
    assert script.keys == ("evaluators.e.metrics.0.user_config.user_script", "evaluators.e.user_script")
    assert script.sha256 == _sha(tmp_path / "src" / "scripts" / "metric.py")
    assert (built.root / script.path).read_text().startswith("def evaluate")
    assert (built.root / by_name["model"].path / "model.onnx").is_file()
    assert by_name["model"].file_count == 1 and by_name["model"].kind == "dir"


def test_bundle_build_rewrites_paths_and_drops_workflow_host(tmp_path: Path) -> None:
    built = bundles.build(_workflow(tmp_path / "src"), tmp_path / "bundle")
    config = json.loads((built.root / "workflow.json").read_text())
    assert "workflow_host" not in config
    assert config["input_model"]["model_path"].startswith("files/")
    assert str(tmp_path / "src") not in json.dumps(config)
    listed = json.loads((built.root / "bundle.json").read_text())
    assert listed["total_bytes"] == built.size_bytes == sum(e["size_bytes"] for e in listed["entries"])


def test_bundle_unpack_works_after_the_originals_are_deleted(tmp_path: Path) -> None:
    built = bundles.build(_workflow(tmp_path / "src"), tmp_path / "bundle")
    shutil.rmtree(tmp_path / "src")
    wf = bundles.unpack(built.root)
    inside = built.root.resolve()
    assert wf.local_files() and all(p.resolve().is_relative_to(inside) for _, p in wf.local_files())
    assert Path(wf.config.input_model.model_path, "model.onnx").is_file()


def test_bundle_tar_round_trip_unpacks_into_dest(tmp_path: Path) -> None:
    built = bundles.build(_workflow(tmp_path / "src"), tmp_path / "bundle")
    tar = built.to_tar(tmp_path / "bundle.tar")
    shutil.rmtree(built.root)
    wf = bundles.unpack(tar, tmp_path / "unpacked")
    assert Path(wf.config.input_model.model_path).is_relative_to((tmp_path / "unpacked").resolve())


def test_bundle_unpack_rejects_modified_files(tmp_path: Path) -> None:
    built = bundles.build(_workflow(tmp_path / "src"), tmp_path / "bundle")
    script = next(e for e in built.entries if e.name == "metric.py")
    (built.root / script.path).write_text("import os; os.system('echo pwned')\n")
    with pytest.raises(HostError, match="does not match its sha256"):
        bundles.unpack(built.root)


def test_bundle_unpack_rejects_a_config_path_outside_the_bundle(tmp_path: Path) -> None:
    built = bundles.build(_workflow(tmp_path / "src"), tmp_path / "bundle")
    config_path = built.root / "workflow.json"
    config = json.loads(config_path.read_text())
    config["input_model"]["model_path"] = str(tmp_path / "src" / "model")
    config_path.write_text(json.dumps(config))
    with pytest.raises(HostError, match="points outside the bundle"):
        bundles.unpack(built.root)


def test_bundle_unpack_rejects_symlinks_in_a_folder_bundle(tmp_path: Path) -> None:
    built = bundles.build(_workflow(tmp_path / "src"), tmp_path / "bundle")
    (built.root / "files" / "escape").symlink_to("/etc")
    with pytest.raises(HostError, match="symlink"):
        bundles.unpack(built.root)


def _tar_with(tmp_path: Path, member: tarfile.TarInfo, data: bytes = b"x") -> Path:
    path = tmp_path / "evil.tar"
    with tarfile.open(path, "w") as tar:
        member.size = len(data) if member.isfile() else 0
        tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return path


@pytest.mark.parametrize(
    "member",
    [
        tarfile.TarInfo("../escape.txt"),
        tarfile.TarInfo("/abs/escape.txt"),
        tarfile.TarInfo("files/a/../../../escape.txt"),
    ],
    ids=["dotdot", "absolute", "nested-dotdot"],
)
def test_bundle_unpack_rejects_tar_members_escaping_dest(tmp_path: Path, member: tarfile.TarInfo) -> None:
    with pytest.raises(HostError, match="unsafe member"):
        bundles.unpack(_tar_with(tmp_path, member), tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()


def test_bundle_unpack_rejects_tar_links(tmp_path: Path) -> None:
    link = tarfile.TarInfo("files/link")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    with pytest.raises(HostError, match="unsafe member"):
        bundles.unpack(_tar_with(tmp_path, link), tmp_path / "out")


def test_bundle_keeps_onnx_external_data_beside_a_model_file(tmp_path: Path) -> None:
    import onnx

    src = tmp_path / "src"
    write_onnx_mlp(src / "raw")
    proto = onnx.load(str(src / "raw" / "model.onnx"))
    (src / "ext").mkdir()
    onnx.save_model(
        proto,
        str(src / "ext" / "m.onnx"),
        save_as_external_data=True,
        location="m.onnx.data",
        size_threshold=0,
    )
    (src / "wf.json").write_text(
        json.dumps({"input_model": {"type": "ONNXModel", "model_path": "ext/m.onnx"}})
    )
    built = bundles.build(load_workflow(src / "wf.json"), tmp_path / "bundle")
    (entry,) = built.entries
    assert entry.kind == "file" and entry.companions == ("m.onnx.data",) and entry.file_count == 2
    shutil.rmtree(src)
    wf = bundles.unpack(built.root)
    loaded = onnx.load(wf.config.input_model.model_path)  # loads the external weights from beside it
    assert len(loaded.graph.initializer) == 6


def test_bundle_plan_hashes_without_copying_and_describes_sizes(tmp_path: Path) -> None:
    wf = _workflow(tmp_path / "src")
    entries = bundles.plan(wf)
    assert list(tmp_path.iterdir()) == [tmp_path / "src"]
    built = bundles.build(wf, tmp_path / "bundle")
    assert entries == built.entries
    text = bundles.describe(entries, "wf")
    assert text.splitlines()[0].startswith("bundle of workflow 'wf': 3 entries,")
    assert "input_model.model_path: model (dir, 1 file" in text and "kB" in text


def test_bundle_build_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "x").write_text("")
    with pytest.raises(HostError, match="not empty"):
        bundles.build(_workflow(tmp_path / "src"), tmp_path / "bundle")
