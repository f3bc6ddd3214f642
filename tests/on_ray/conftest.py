"""The ``ray`` tier's session fixture: one real Ray head (:mod:`ray_head`) for all its tests."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ray_head import RayHead


@pytest.fixture(scope="session")
def ray_head() -> Iterator[RayHead]:
    # A short folder: Ray's socket paths must stay under ~107 bytes.
    temp_dir = Path(tempfile.mkdtemp(prefix="olv-ray-", dir="/tmp"))
    head = RayHead(temp_dir)
    head.start()
    try:
        yield head
    finally:
        head.stop()
        shutil.rmtree(temp_dir, ignore_errors=True)
