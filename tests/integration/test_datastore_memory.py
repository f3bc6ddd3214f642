"""The datastore conformance suite on ``memory://``: the backend-independent code paths without a disk."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from conformance.datastore_suite import DatastoreSuite
from olivine.datastores import Datastore

pytestmark = pytest.mark.integration


class TestMemoryDatastore(DatastoreSuite):
    @pytest.fixture
    def datastore(self) -> Iterator[Datastore]:
        ds = Datastore.from_url(f"memory://olivine-test-{uuid.uuid4().hex}")
        yield ds
        if ds.fs.exists(ds.root):
            ds.fs.rm(ds.root, recursive=True)  # the memory filesystem is process-wide
