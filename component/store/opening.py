"""Opening the store on either engine: connection, migrations, and SQLite's own upkeep.

SQLite (the embedded default) runs in WAL mode behind the flock of :mod:`.lock`, with its WAL
checkpointed from a second connection.  PostgreSQL needs neither: the server serialises
writers, and one Courier at a time is ensured by the lease (:mod:`component.standby`), taken
before the store is opened.  Migrations are per engine: ``migrations/*.sql`` (SQLite, numbered,
recorded in ``PRAGMA user_version``) and ``migrations/postgresql/*.sql`` (recorded in the table
``courier_schema``); both lists share their numbers.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiosqlite

from .engine import Connection, PgConnection, StoreURLError, parse_url
from .lock import StoreLock

log = logging.getLogger(__name__)


def migrations(engine: str) -> list[tuple[int, str]]:
    folder = resources.files(__package__) / "migrations"
    if engine == "postgresql":
        folder = folder / "postgresql"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text()))
    return sorted(found)


def pg_schema(dsn: str) -> str:
    """The schema of ``?search_path=NAME`` in a PostgreSQL URL ('' when there is none)."""
    found = parse_qs(urlsplit(dsn).query).get("search_path", [""])[0].split(",")[0].strip()
    if found and not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", found):
        raise StoreURLError(f"search_path {found!r}: a schema name is lower-case letters, digits and _")
    return found


@dataclass(slots=True)
class Opened:
    engine: str  # sqlite | postgresql
    conn: Connection
    path: str = ""  # SQLite: the file ("" in memory)
    lock: StoreLock | None = None


async def connect(target: str | Path, synchronous: str = "normal") -> Opened:
    """Connect to *target* (a path or a ``store.url``) and bring its schema up to date."""
    engine, where = parse_url(str(target))
    if engine == "postgresql":
        pg = await PgConnection.connect(where)
        schema = pg_schema(where)
        if schema:  # several domains on one database: a schema each (docs/operators.md)
            await pg.executescript(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await _migrate_pg(pg)
        return Opened("postgresql", pg)
    lock = None
    if where != ":memory:":
        Path(where).parent.mkdir(parents=True, exist_ok=True)
        lock = StoreLock(where)
        lock.acquire()  # StoreLocked: another Courier has it
    # check_same_thread=False: small commits also run on the event loop (store/shared.py)
    conn = await aiosqlite.connect(where, isolation_level=None, check_same_thread=False)
    await conn.execute("PRAGMA journal_mode=WAL")
    await conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
    await conn.execute("PRAGMA foreign_keys=ON")
    await _migrate_sqlite(conn)
    return Opened("sqlite", conn, "" if where == ":memory:" else where, lock)


async def _migrate_sqlite(conn: aiosqlite.Connection) -> None:
    async with conn.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    current = row[0] if row else 0
    for number, sql in migrations("sqlite"):
        if number > current:
            log.info("Applying store migration %04d", number)
            await conn.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version={number};\nCOMMIT;")


async def _migrate_pg(conn: PgConnection) -> None:
    await conn.executescript("CREATE TABLE IF NOT EXISTS courier_schema (version INTEGER NOT NULL)")
    async with conn.execute("SELECT COALESCE(MAX(version), 0) FROM courier_schema") as cur:
        row = await cur.fetchone()
    current = row[0] if row else 0
    for number, sql in migrations("postgresql"):
        if number > current:
            log.info("Applying store migration %04d (PostgreSQL)", number)
            await conn.executescript(
                f"BEGIN;\n{sql}\nDELETE FROM courier_schema;\nINSERT INTO courier_schema VALUES ({number});\nCOMMIT;"
            )


__all__ = ["Opened", "connect", "migrations"]
