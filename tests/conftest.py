"""Fixtures and checks for every test: the store engine (SQLite, or PostgreSQL with
COURIER_TEST_STORE=postgresql), and the schema check of what Courier sends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import pgserver
from tests.conformance.xmpp import CourierProcess
from tests.schemas import sent_violations


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


@pytest.fixture(autouse=True)
def courier_emits_valid_stanzas() -> Iterator[None]:
    """After each test, every stanza any Courier process sent during it validates
    against the XML Schemas of ``xeps/`` (the elements in our namespaces)."""
    yield
    problems = []
    for process in CourierProcess.made:
        problems += sent_violations(process.unchecked_sent())
    if problems:
        pytest.fail("Courier sent stanzas its own specifications do not allow:\n" + "\n".join(problems[:20]))
