"""Parts of the Ray search and the Ray submit path that need no cluster: a task that does not see the
engine's cache fails clearly, the spread settings travel in a job spec, and the working_dir archive is
stable (no Ray import)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from olivine.engine.executor import SerialExecutor, SpreadSettings, executor_for
from olivine.engine.task_work import TaskRecipe, work_of
from olivine.errors import CacheError, HostError
from olivine.hosts.ray_jobs_api import _zip_folder
from olivine.model.accelerator import Accelerator
from olivine.model.handle import ModelHandle
from olivine.search.ranking import Objectives


def test_spread_settings_round_trip_and_refuse_an_unknown_executor() -> None:
    settings = SpreadSettings(workers=3, num_cpus=1.5)
    assert SpreadSettings.from_json(settings.to_json()) == settings
    with pytest.raises(HostError, match="search_spread executor 'dask' is unknown"):
        SpreadSettings.from_json({"executor": "dask", "workers": 2, "num_cpus": 1})
    assert isinstance(executor_for(None), SerialExecutor)
    # A record written before the executor field existed (it always carried "executor": "ray").
    old = SpreadSettings.from_json({"executor": "ray", "workers": 2, "num_cpus": 1, "address": None})
    assert old == SpreadSettings(workers=2, num_cpus=1) and old.executor == "ray"
    local = SpreadSettings(workers=2, num_cpus=1, executor="local")
    assert SpreadSettings.from_json(local.to_json()) == local


def test_ray_task_refuses_a_cache_it_cannot_see(tmp_path: Path) -> None:
    recipe = TaskRecipe(
        token="t",
        workflow_id="w",
        cache_root=tmp_path / "cache",
        marker=tmp_path / "cache" / "w" / ".olivine-spread-t",  # never written: another node's disk
        accelerator=Accelerator(),
        input_model=ModelHandle.from_json({"type": "ONNXModel", "config": {"model_path": str(tmp_path)}}),
        input_model_id="m",
        data_configs={},
        base_dir=None,
        objectives=Objectives(),
        workflow=None,
    )
    with pytest.raises(CacheError, match=r"cache folder .* is not visible on node .*: every node must mount"):
        work_of(recipe)
    assert not (tmp_path / "cache").exists()  # no node-local cache was started


def test_working_dir_archive_is_stable_and_keeps_files_at_its_root(tmp_path: Path) -> None:
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "workflow.json").write_text("{}")
    (tmp_path / "job.json").write_text('{"job_id": "j"}')
    (tmp_path / "empty").mkdir()
    first, second = _zip_folder(tmp_path), _zip_folder(tmp_path)
    assert first == second
    names = zipfile.ZipFile(io.BytesIO(first)).namelist()
    assert names == ["bundle/workflow.json", "empty/", "job.json"]
