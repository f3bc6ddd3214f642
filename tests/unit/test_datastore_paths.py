"""Per-user folders: $OLIVINE_HOME, then XDG, then the XDG defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from olivine.datastores.local import LocalDatastore
from olivine.datastores.paths import default_datastore_dir, olivine_home, user_config_dir, user_data_dir


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("OLIVINE_HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


def test_paths_default_to_xdg_defaults_under_home(clean_env: Path) -> None:
    home = clean_env / "home"
    assert olivine_home() is None
    assert user_data_dir() == home / ".local" / "share" / "olivine"
    assert user_config_dir() == home / ".config" / "olivine"
    assert default_datastore_dir() == home / ".local" / "share" / "olivine" / "datastore"


def test_paths_follow_xdg_variables(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(clean_env / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(clean_env / "cfg"))
    assert default_datastore_dir() == clean_env / "data" / "olivine" / "datastore"
    assert user_config_dir() == clean_env / "cfg" / "olivine"


def test_paths_ignore_relative_xdg_variables(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", "relative/data")
    assert user_data_dir() == clean_env / "home" / ".local" / "share" / "olivine"


def test_paths_olivine_home_wins(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(clean_env / "data"))
    monkeypatch.setenv("OLIVINE_HOME", str(clean_env / "ohome"))
    assert olivine_home() == clean_env / "ohome"
    assert default_datastore_dir() == clean_env / "ohome" / "datastore"
    assert user_config_dir() == clean_env / "ohome"
    assert LocalDatastore.default().root == (clean_env / "ohome" / "datastore").as_posix()
