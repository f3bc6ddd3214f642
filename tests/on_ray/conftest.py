"""The ``ray`` tier's session fixtures: real Ray heads (:mod:`ray_head`), each started once for all tests
that use it: ``ray_head`` (no authentication) and ``ray_token_head`` (token authentication, its own ports)."""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from olivine.engine.affinity import LOCK_DIR_ENV
from ray_head import RayHead


def _head(**options: object) -> Iterator[RayHead]:
    # A short folder: Ray's socket paths must stay under ~107 bytes.
    temp_dir = Path(tempfile.mkdtemp(prefix="olv-ray-", dir="/tmp"))
    head = RayHead(temp_dir, **options)  # type: ignore[arg-type]
    # The cluster's tasks claim CPUs in a lock folder of their own: other Olivine processes on this shared
    # machine (another test run's pool workers) do not make them wait, nor do they make those wait.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(LOCK_DIR_ENV, str(temp_dir / "cpu-locks"))
        head.start()
    try:
        yield head
    finally:
        head.stop()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_head() -> Iterator[RayHead]:
    yield from _head()


@pytest.fixture(scope="session")
def ray_token_head() -> Iterator[RayHead]:
    """A cluster that requires ``Authorization: Bearer <token>`` (``RAY_AUTH_MODE=token``); its token is
    ``head.auth_token`` (a fresh one per session: tests plant it as a secret)."""
    yield from _head(auth_token="olvtok" + secrets.token_hex(24))
