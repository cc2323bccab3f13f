"""The store tests' fixtures: a fresh store on the engine under test (SQLite, or PostgreSQL with
COURIER_TEST_STORE=postgresql: ``store_target`` in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from component.store import Store


@pytest.fixture
def db(store_target: Path) -> Path:
    return store_target  # a SQLite file, or a PostgreSQL URL (COURIER_TEST_STORE=postgresql)


@pytest.fixture
async def store(db: Path) -> AsyncIterator[Store]:
    s = await Store.open(db)
    try:
        yield s
    finally:
        await s.close()
