"""The Ray system config and the Ray host without Ray installed (no head needed: default suite)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
