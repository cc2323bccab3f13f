"""Fixtures for every test: the store engine (SQLite, or PostgreSQL with COURIER_TEST_STORE=postgresql)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import pgserver


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only: looks inside the SQLite file itself (skipped on PostgreSQL)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if pgserver.engine() != "postgresql":
        return
    skip = pytest.mark.skip(reason="SQLite-specific (COURIER_TEST_STORE=postgresql)")
    for item in items:
        if "sqlite_only" in item.keywords:
            item.add_marker(skip)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    pgserver.stop()


@pytest.fixture
def store_target(tmp_path: Path) -> str | Path:
    """Where a test's store lives: a SQLite file, or a fresh PostgreSQL database."""
    if pgserver.engine() == "postgresql":
        return pgserver.server().create_database()
    return tmp_path / "state" / "courier.sqlite3"
