"""The Ray system config and the Ray host without Ray installed (no head needed: default suite)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from olivine.config.systems import RayConfig, SystemConfig
from olivine.errors import ConfigError, MissingDependencyError
from olivine.hosts.base import host_for
from olivine.jobs.profiles import Profiles
from olivine.jobs.store import JobStore


def test_ray_system_config_reads_the_issue_keys() -> None:
    config = TypeAdapter(SystemConfig).validate_python(
        {
            "type": "Ray",
            "address": "http://127.0.0.1:8265",
            "runtime_env": {"pip": ["olivine"]},
            "entrypoint_num_cpus": 1,
            "entrypoint_memory": 2_000_000_000,
            "entrypoint_resources": {"fast_cpu": 1},
            "datastores": "team",
        }
    )
    assert isinstance(config, RayConfig) and config.default_datastore() == "team"
    assert RayConfig.system_type() == "Ray"


def test_ray_system_config_refuses_a_working_dir_and_unknown_keys(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts.yaml"
    hosts.write_text("hosts:\n  c: {type: Ray, address: 'http://h:8265', runtime_env: {working_dir: /x}}\n")
    with pytest.raises(
        ConfigError, match=r"hosts.yaml: hosts.c.Ray.runtime_env: runtime_env.working_dir is set by Olivine"
    ):
        Profiles(hosts)
    hosts.write_text("hosts:\n  c: {type: Ray, address: 'http://h:8265', adress: 'typo'}\n")
    with pytest.raises(ConfigError, match=r"adress"):
        Profiles(hosts)
    hosts.write_text("hosts:\n  c: {type: Ray, address: 'http://h:8265', search_timing: 'alone'}\n")
    with pytest.raises(ConfigError, match=r"hosts.c.Ray.search_timing: .*'auto', 'apart' or 'in_place'"):
        Profiles(hosts)


def test_ray_host_without_ray_installed_is_one_error_with_the_install_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets when Ray is not installed
    monkeypatch.delitem(sys.modules, "olivine.hosts.ray", raising=False)
    config = RayConfig(address="http://127.0.0.1:8265")
    with pytest.raises(
        MissingDependencyError,
        match=r"host 'Ray' needs the package 'ray(\.job_submission)?': pip install 'olivine\[ray\]'",
    ):
        host_for("cluster", config, JobStore(tmp_path / "jobs.db"))


def test_nothing_but_the_ray_host_imports_ray() -> None:
    code = (
        "import sys; import olivine.api, olivine.cli.main, olivine.hosts.service, olivine.hosts.submission,"
        " olivine.jobs.worker, olivine.jobs.remote, olivine.engine.run;"
        " print('ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _search_workflow(tmp_path: Path, *, search: bool = True, threads: int | None = None) -> Any:
    from olivine.config.loader import validate_config
    from olivine.engine.resolve import resolve

    (tmp_path / "model.onnx").write_bytes(b"")
    latency: dict[str, Any] = {"name": "latency", "type": "latency", "sub_types": [{"name": "avg"}]}
    latency["data_config"] = "dummy"
    if threads is not None:
        options = {"intra_op_num_threads": threads}
        latency["user_config"] = {"inference_settings": {"onnx": {"session_options": options}}}
    data = {
        "input_model": {"type": "ONNXModel", "model_path": str(tmp_path / "model.onnx")},
        "systems": {"cluster": {"type": "Ray", "address": "http://127.0.0.1:1", "search_workers": 2}},
        "data_configs": [
            {
                "name": "dummy",
                "type": "DummyDataContainer",
                "load_dataset_config": {"input_names": ["x"], "input_shapes": [[1, 4]]},
            }
        ],
        "evaluators": {"e": {"metrics": [latency]}},
        "passes": {"q": {"type": "OnnxDynamicQuantization", "per_channel": "SEARCHABLE_VALUES"}},
        "engine": {"evaluator": "e", "search_strategy": search},
    }
    return resolve(validate_config(data), config_path=tmp_path / "cfg.json", base_dir=tmp_path)


def test_ray_search_workers_need_a_search_and_pinned_timing_threads(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    wf = _search_workflow(tmp_path, search=False)
    host = host_for("cluster", wf.config.systems["cluster"], store)
    with pytest.raises(
        ConfigError, match=r"cfg.json: systems.cluster.search_workers: .*no engine.search_strategy"
    ):
        host.search_spread(wf)
    with pytest.raises(ConfigError, match=r"latency leave .*intra_op_num_threads unset"):
        host.search_spread(_search_workflow(tmp_path))
    spread = host.search_spread(_search_workflow(tmp_path, threads=2))
    assert spread == {"executor": "ray", "workers": 2, "num_cpus": 2.0, "address": None, "timing": "auto"}
    pinned = RayConfig(
        address="http://127.0.0.1:1", search_workers=3, search_task_cpus=1.5, search_timing="apart"
    )
    spread = host_for("other", pinned, store).search_spread(_search_workflow(tmp_path))
    assert spread is not None and spread["num_cpus"] == 1.5 and spread["workers"] == 3
    assert spread["timing"] == "apart"
    assert host_for("off", RayConfig(address="http://x:1"), store).search_spread(wf) is None
