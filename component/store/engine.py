"""The two engines behind :class:`~component.store.Store`: SQLite (aiosqlite) and PostgreSQL (asyncpg).

The store's SQL is written once, in the dialect both engines share (``ON CONFLICT``,
``RETURNING``, partial indexes, window functions; ``rowid`` is a real column in the
PostgreSQL schema).  SQLite gets it unchanged through aiosqlite — the message path
pays nothing for the second engine.  :class:`PgConnection` gives asyncpg the small
part of aiosqlite's interface the store uses (``execute`` as an awaitable or an
``async with``, ``executemany``, ``executescript``) and makes three mechanical
changes on the way: ``?`` and ``:name`` parameters become ``$n``, and ``BEGIN
IMMEDIATE`` (SQLite's write lock) becomes ``BEGIN``.  One asyncpg connection, used by
one operation at a time, like aiosqlite's one thread: the group commit keeps its
single writer and its transaction semantics on both engines.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Callable, Generator, Iterable, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

try:  # PostgreSQL is optional at run time: the embedded default needs only SQLite
    import asyncpg
except ImportError:  # pragma: no cover - asyncpg is a declared dependency
    asyncpg = None

#: Errors that mean "the schema refused this operation" (a bug or a race), on either engine.
INTEGRITY_ERRORS: tuple[type[BaseException], ...] = (sqlite3.IntegrityError,)
#: Any database error (a failed ROLLBACK, a checkpoint, a lost connection), on either engine.
DB_ERRORS: tuple[type[BaseException], ...] = (sqlite3.Error,)
if asyncpg is not None:
    INTEGRITY_ERRORS += (asyncpg.IntegrityConstraintViolationError,)
    DB_ERRORS += (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


class StoreURLError(ValueError):
    """``store.url`` names no engine Courier has."""


def parse_url(url: str) -> tuple[str, str]:
    """``(engine, target)``: ``("sqlite", path)`` or ``("postgresql", dsn)``.

    ``sqlite:///PATH`` follows SQLAlchemy: ``sqlite:///var/c.sqlite`` is relative to the working
    directory, ``sqlite:////var/lib/courier/c.sqlite`` absolute, ``sqlite:///:memory:`` in memory.
    A bare path (no scheme) is a SQLite file.
    """
    if "://" not in url:
        return "sqlite", url
    scheme = url.split("://", 1)[0].lower()
    if scheme == "sqlite":
        path = unquote(url[len("sqlite:///") :]) if url.lower().startswith("sqlite:///") else ""
        if not path:
            raise StoreURLError(f"store.url {url!r}: a SQLite URL is sqlite:///PATH")
        return "sqlite", path
    if scheme in ("postgresql", "postgres"):
        if asyncpg is None:
            raise StoreURLError("store.url is PostgreSQL but asyncpg is not installed")
        return "postgresql", url
    raise StoreURLError(f"store.url {url!r}: the engines are sqlite:/// and postgresql://")


def describe(url: str) -> str:
    """The URL without its password, for logs and ``courier status``."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url


_TOKEN = re.compile(r"'(?:[^']|'')*'|\?|(?<!:):([A-Za-z_]\w*)")


def _translate(sql: str) -> tuple[str, list[str] | None]:
    """``?``/``:name`` → ``$n``; the parameter names in order (None: positional)."""
    names: list[str] = []
    count = 0
    positional = False

    def sub(match: re.Match[str]) -> str:
        nonlocal count, positional
        token = match.group(0)
        if token.startswith("'"):
            return token
        if token == "?":
            positional = True
            count += 1
            return f"${count}"
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    text = _TOKEN.sub(sub, sql)
    if text.lstrip().upper().startswith("BEGIN IMMEDIATE"):
        text = "BEGIN"
    return text, None if positional or not names else names


class _Cursor:
    def __init__(self, rows: Sequence[Any]) -> None:
        self._rows = rows

    async def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    async def fetchall(self) -> Sequence[Any]:
        return self._rows


class _Result:
    """What :meth:`PgConnection.execute` returns: awaitable, or an ``async with`` (as in aiosqlite)."""

    def __init__(self, run: Callable[[], Any]) -> None:
        self._run = run

    def __await__(self) -> Generator[Any, None, _Cursor]:
        return self._run().__await__()

    async def __aenter__(self) -> _Cursor:
        cursor: _Cursor = await self._run()
        return cursor

    async def __aexit__(self, *exc: object) -> None:
        return None


_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK")


class PgConnection:
    """The slice of aiosqlite's ``Connection`` the store uses, over one asyncpg connection."""

    def __init__(self, conn: Any) -> None:
        self.raw = conn  # the asyncpg connection
        self._busy = asyncio.Lock()  # asyncpg allows one operation at a time per connection
        self._sql: dict[str, tuple[str, list[str] | None]] = {}

    @classmethod
    async def connect(cls, dsn: str) -> PgConnection:
        return cls(await asyncpg.connect(dsn))

    def _prepare(self, sql: str, params: Any) -> tuple[str, list[Any]]:
        found = self._sql.get(sql)
        if found is None:
            found = self._sql[sql] = _translate(sql)
        text, names = found
        if params is None:
            return text, []
        if names is not None:
            return text, [params[n] for n in names]
        return text, list(params)

    def execute(self, sql: str, parameters: Any = None) -> _Result:
        async def run() -> _Cursor:
            text, args = self._prepare(sql, parameters)
            async with self._busy:
                if not args and text.split(None, 1)[0].upper() in _CONTROL:
                    await self.raw.execute(text)
                    return _Cursor(())
                return _Cursor(await self.raw.fetch(text, *args))

        return _Result(run)

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> None:
        rows = [list(p) for p in parameters]
        if not rows:
            return
        text, _ = self._prepare(sql, rows[0])
        async with self._busy:
            await self.raw.executemany(text, rows)

    async def executescript(self, sql: str) -> None:
        async with self._busy:
            await self.raw.execute(sql)  # no parameters: the simple protocol runs every statement

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.raw.close(), 2)
        except (TimeoutError, Exception):  # a connection already gone: drop it
            self.raw.terminate()



#: What the store's SQL runs on: aiosqlite's connection or :class:`PgConnection` (same calls).
Connection = Any


__all__ = ["DB_ERRORS", "INTEGRITY_ERRORS", "Connection", "PgConnection", "StoreURLError", "describe", "parse_url"]
