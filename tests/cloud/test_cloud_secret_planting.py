"""Planted secrets (tests/secret_plants.py) on the object-store datastores: the leaky and the failing
workflow run on the LocalWorker host exporting to Azurite (``az://``) and moto (``s3://``); every blob of
the export, every file under ``OLIVINE_HOME`` and everything the commands printed (``--verbose``) is
grepped. The datastore's own credential (Azurite's account key, the AWS secret key) is a needle too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cloud_servers import AZURITE_KEY, CONTAINER, MOTO_ENV, Azurite, MotoS3, fresh_prefix
from olivine.datastores import Datastore
from secret_plants import NEEDLES, SECRETS, grep_tree, run_leaky_and_failing


def _olivine(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "olivine", *args, "--verbose"],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
    )


def _plant(tmp_path: Path, env: dict[str, str], url: str, needles: list[bytes]) -> None:
    host = {"systems": {"w": {"type": "LocalWorker"}}, "workflow_host": "w"}
    jobs, printed = run_leaky_and_failing(_olivine, env, tmp_path, ("--datastore", url), **host)
    for workflow_id, job in jobs.items():
        for args in (("status", job, "--json"), ("logs", job), ("status", "--datastore", url, workflow_id)):
            done = _olivine(env, tmp_path, *args)
            printed += [done.stdout, done.stderr]
    leaky_log = _olivine(env, tmp_path, "logs", jobs["leaky"]).stdout
    assert "fd1 says ***" in leaky_log and "child says ***" in leaky_log
    ds = Datastore.from_url(url)
    blobs = {rel: ds.read_bytes(rel) for rel, _ in ds.walk_files("")}
    assert any("/logs/" in rel for rel in blobs) and any("/output/" in rel for rel in blobs)
    hits = [
        f"{rel}: {n.decode()}" for rel, data in blobs.items() for n in needles if n in data + rel.encode()
    ]
    assert hits == []
    assert grep_tree(tmp_path) == []
    text = "\n".join(printed).encode()
    assert [n for n in needles if n in text] == []


@pytest.mark.azure
def test_planted_secrets_reach_no_blob_on_azurite(azure_env: Azurite, tmp_path: Path) -> None:
    # The connection string is Azurite's real one (its key is a needle); the others stay planted.
    env = {
        **os.environ,
        **SECRETS,
        "AZURE_STORAGE_CONNECTION_STRING": azure_env.connection_string(),
        "OLIVINE_HOME": str(tmp_path / "home"),
    }
    needles = [n for n in NEEDLES if n != b"plantedCONNkey123"] + [AZURITE_KEY.encode()]
    _plant(tmp_path, env, f"az://{CONTAINER}/{fresh_prefix()}", needles)


@pytest.mark.s3
def test_planted_secrets_reach_no_object_on_s3(s3_env: MotoS3, tmp_path: Path) -> None:
    # moto takes any credentials: the planted AWS secret key is the one the worker signs with.
    env = {
        **os.environ,
        **MOTO_ENV,
        **SECRETS,
        "AWS_ENDPOINT_URL_S3": s3_env.endpoint,
        "OLIVINE_HOME": str(tmp_path / "home"),
    }
    _plant(tmp_path, env, f"s3://{CONTAINER}/{fresh_prefix()}", list(NEEDLES))
