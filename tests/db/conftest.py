"""Fixtures shared by the storage tests: every test runs over each KV backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from node.db.api import KV
from tests.db.backends import NAMES, Backend


@pytest.fixture(params=NAMES)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return Backend(request.param, tmp_path)


@pytest.fixture
def kv(backend: Backend) -> Iterator[KV]:
    store = backend.open()
    yield store
    store.close()
