"""A second, independent, synchronous look at a store (what a crash would leave), on either engine.

``connect(target)`` gives a sqlite3 connection for a SQLite file, or for a PostgreSQL URL an
object with the same ``execute(sql, params).fetchone() / fetchall()`` and rows readable by
index or by column name; the SQL is the store's (``?`` parameters), translated as the store does.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import asyncpg

from component.store.engine import _translate, parse_url


class Row(tuple):
    """A row: a tuple (compares as one) whose columns can also be read by name, as sqlite3.Row."""

    keys_: list[str]

    def __new__(cls, record: Any) -> Row:
        row = super().__new__(cls, tuple(record.values()))
        row.keys_ = list(record.keys())
        return row

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self.keys_.index(key))
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return self.keys_


class _Rows:
    def __init__(self, rows: list[Any]) -> None:
        self._rows = rows

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Any]:
        return self._rows

    def __iter__(self) -> Any:
        return iter(self._rows)


class PgView:
    """One query, one short asyncpg connection, in a thread of its own (callers may be inside a loop)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def execute(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> _Rows:
        text, names = _translate(sql)
        args = list(params) if names is None else [params[n] for n in names]  # type: ignore[call-overload]
        result: list[Any] = []
        failure: list[BaseException] = []

        async def run() -> None:
            conn = await asyncpg.connect(self.url)
            try:
                result.extend(await conn.fetch(text, *args))
            finally:
                await conn.close()

        def thread() -> None:
            try:
                asyncio.run(run())
            except BaseException as exc:
                failure.append(exc)

        t = threading.Thread(target=thread)
        t.start()
        t.join()
        if failure:
            raise failure[0]
        return _Rows([Row(r) for r in result])

    def close(self) -> None:
        return None  # every query had its own connection

    def __enter__(self) -> PgView:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def connect(target: str | Path, read_only: bool = False) -> Any:
    engine, where = parse_url(str(target))
    if engine == "postgresql":
        return PgView(where)
    if read_only:
        conn = sqlite3.connect(f"file:{where}?mode=ro", uri=True)
        conn.row_factory = sqlite3.Row
        return conn
    return sqlite3.connect(where)
