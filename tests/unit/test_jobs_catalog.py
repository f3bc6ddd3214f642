"""Data assets as the CLI lists them: every sealed export is a version, with its state."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from olivine.datastores.base import Datastore
from olivine.datastores.exporter import Exporter
from olivine.datastores.layout import claim_export
from olivine.errors import JobNotFoundError
from olivine.hosts import service
from olivine.jobs.catalog import AssetSummary, AssetVersion
from olivine.jobs.profiles import Profiles

T0 = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def _sealed(store: Datastore, workflow_id: str, at: datetime, state: str) -> Exporter:
    exporter = Exporter(store, claim_export(store, workflow_id, at))
    exporter.finalize({"status": {"state": state}})
    return exporter


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OLIVINE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_assets_list_reads_the_default_datastore_with_every_state(home: Path) -> None:
    store = Datastore.from_url((home / "datastore").as_uri())
    first = _sealed(store, "wf", T0, "SUCCEEDED")
    second = _sealed(store, "wf", T0 + timedelta(minutes=5), "FAILED")
    _sealed(store, "other", T0, "CANCELLED")
    assets = service.assets_list()
    assert [a.name for a in assets] == ["other", "wf"]
    assert assets[1] == AssetSummary(
        "wf",
        (
            AssetVersion("2030-01-02-03-04-05", "SUCCEEDED", first.layout.url),
            AssetVersion("2030-01-02-03-09-05", "FAILED", second.layout.url),
        ),
    )
    assert assets[1].to_json()["versions"][1] == {
        "version": "2030-01-02-03-09-05",
        "state": "FAILED",
        "url": second.layout.url,
    }


def test_assets_show_gives_the_newest_version_or_the_one_asked_for(home: Path, tmp_path: Path) -> None:
    store = Datastore.from_url((tmp_path / "team").as_uri())
    first = _sealed(store, "wf", T0, "SUCCEEDED")
    _sealed(store, "wf", T0 + timedelta(minutes=5), "CANCELLED")
    url = store.url_for()
    latest = service.assets_show("wf", datastore=url)
    assert latest["version"] == "2030-01-02-03-09-05" and latest["state"] == "CANCELLED"
    chosen = service.assets_show("wf", version="2030-01-02-03-04-05", datastore=url)
    assert chosen["state"] == "SUCCEEDED" and chosen["url"] == first.layout.url
    with pytest.raises(JobNotFoundError, match="no version 2031"):
        service.assets_show("wf", version="2031-01-01-00-00-00", datastore=url)
    with pytest.raises(JobNotFoundError, match="no data asset 'nope'"):
        service.assets_show("nope", datastore=url)


def test_assets_default_datastore_is_the_hosts_file_default_then_the_default_host_s(
    home: Path, tmp_path: Path
) -> None:
    team, box = (Datastore.from_url((tmp_path / n).as_uri()) for n in ("team", "box"))
    _sealed(team, "in-team", T0, "SUCCEEDED")
    _sealed(box, "in-box", T0, "SUCCEEDED")
    hosts = tmp_path / "hosts.yaml"
    datastores = f"datastores:\n  team: {{url: {team.url_for()}}}\n  box: {{url: {box.url_for()}}}\n"
    host = "default_host: worker\nhosts:\n  worker: {type: LocalWorker, datastores: box}\n"
    hosts.write_text(f"default_datastore: team\n{host}{datastores}")
    assert [a.name for a in service.assets_list(profiles=Profiles(hosts))] == ["in-team"]
    hosts.write_text(f"{host}{datastores}")
    assert [a.name for a in service.assets_list(profiles=Profiles(hosts))] == ["in-box"]
    assert service.assets_list(datastore="team", profiles=Profiles(hosts))[0].name == "in-team"


def test_assets_list_of_an_empty_datastore_is_empty(home: Path) -> None:
    assert service.assets_list() == []
