"""The user's hosts file: where it is, strict parsing, name lookups, credentials kept out of reprs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from olivine.errors import ConfigError, ReferenceNotFoundError
from olivine.jobs.profiles import Profiles, hosts_file_path

_FILE = """
default_host: box
hosts:
  box: {type: localworker, datastores: team, cancel_grace_s: 3}
  here: {type: LocalSystem}
datastores:
  team:
    url: file:///tmp/olivine-team
    options: {account_name: dev, account_key: s3cr3t-key-value, nested: {client_secret: abcd1234}}
"""


def _write(tmp_path: Path, text: str = _FILE) -> Path:
    path = tmp_path / "hosts.yaml"
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_hosts_file_path_prefers_olivine_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLIVINE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert hosts_file_path() == (tmp_path / "home").resolve() / "hosts.yaml"


def test_hosts_file_path_uses_xdg_config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLIVINE_HOME", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert hosts_file_path() == tmp_path / "xdg" / "olivine" / "hosts.yaml"


def test_profiles_look_up_hosts_and_datastores_by_name(tmp_path: Path) -> None:
    profiles = Profiles(_write(tmp_path))
    box = profiles.host("box")
    assert box.type == "LocalWorker" and box.cancel_grace_s == 3  # type: ignore[union-attr]
    assert profiles.host("here").type == "LocalSystem"
    assert profiles.datastore("team").options["account_key"] == "s3cr3t-key-value"
    assert profiles.data.default_host == "box"


def test_profiles_unknown_name_lists_what_is_defined(tmp_path: Path) -> None:
    profiles = Profiles(_write(tmp_path))
    with pytest.raises(ReferenceNotFoundError, match=r"host 'gpu' is not defined; .* defines: box, here"):
        profiles.host("gpu")


def test_profiles_missing_file_says_where_it_was_looked_for(tmp_path: Path) -> None:
    profiles = Profiles(tmp_path / "absent.yaml")
    with pytest.raises(ReferenceNotFoundError, match=r"absent\.yaml does not exist"):
        profiles.datastore("team")


def test_profiles_reject_unknown_keys_naming_file_and_key(tmp_path: Path) -> None:
    path = _write(tmp_path, "hosts:\n  box: {type: LocalWorker, grace: 3}\n")
    with pytest.raises(ConfigError, match=r"hosts.yaml: hosts.box.grace: unknown key"):
        Profiles(path)


def test_profiles_reject_unknown_host_type(tmp_path: Path) -> None:
    path = _write(tmp_path, "hosts:\n  box: {type: Kubernetes}\n")
    with pytest.raises(ConfigError, match=r"hosts.box.type: unknown system type 'Kubernetes'"):
        Profiles(path)


def test_datastore_profile_hides_credentials(tmp_path: Path) -> None:
    team = Profiles(_write(tmp_path)).datastore("team")
    public = team.public_options()
    assert public == {"account_name": "dev", "nested": {}}
    for text in (repr(team), str(team), str(public)):
        assert "s3cr3t" not in text and "abcd1234" not in text


def test_profiles_warn_when_credentials_are_readable_by_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _write(tmp_path)
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="olivine.jobs.profiles"):
        Profiles(path)
    assert "chmod 600" in caplog.text
