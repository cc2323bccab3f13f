"""store.url: the engines, the SQL translation for asyncpg, and PostgreSQL's migrations (a real server)."""

from __future__ import annotations

import pytest

from component import config as configuration
from component.store import Store
from component.store.engine import StoreURLError, _translate, describe, parse_url
from component.store.opening import migrations
from tests import pgserver
from tests.store.rows import row


def test_urls_name_the_engine_and_the_default_is_the_sqlite_file() -> None:
    assert parse_url("sqlite:///var/c.sqlite") == ("sqlite", "var/c.sqlite")
    assert parse_url("sqlite:////var/lib/courier/c.sqlite") == ("sqlite", "/var/lib/courier/c.sqlite")
    assert parse_url("sqlite:///:memory:") == ("sqlite", ":memory:")
    assert parse_url("var/courier.sqlite") == ("sqlite", "var/courier.sqlite")
    assert parse_url("postgresql://courier@127.0.0.1:5432/courier")[0] == "postgresql"
    with pytest.raises(StoreURLError):
        parse_url("mysql://x@y/z")
    assert describe("postgresql://courier:s3cret@db/courier") == "postgresql://courier:***@db/courier"
    config = configuration.load(None, {}, **{"xmpp.secret": "s"})
    assert config.store_url == "var/courier.sqlite"
    with pytest.raises(configuration.ConfigError, match="sqlite:///"):
        configuration.load(None, {}, **{"xmpp.secret": "s", "store.url": "oracle://x"})


def test_parameters_become_numbered_and_literals_stay() -> None:
    assert _translate("SELECT a FROM t WHERE b = ? AND c = '?' AND d = ?") == (
        "SELECT a FROM t WHERE b = $1 AND c = '?' AND d = $2",
        None,
    )
    assert _translate("UPDATE t SET x = :now, y = :now - z WHERE k = :k") == (
        "UPDATE t SET x = $1, y = $1 - z WHERE k = $2",
        ["now", "k"],
    )
    assert _translate("BEGIN IMMEDIATE")[0] == "BEGIN"


async def test_postgresql_migrates_once_and_keeps_the_data() -> None:
    url = pgserver.server().create_database()
    s = await Store.open(url)
    assert s.engine == "postgresql"
    s.queue_message(row(1))
    await s.close()
    s = await Store.open(url)  # a second migration would fail on CREATE TABLE
    try:
        assert await s.max_seq() == 1
    finally:
        await s.close()
    latest = max(n for n, _ in migrations("postgresql"))
    assert latest == max(n for n, _ in migrations("sqlite"))  # one numbering for both engines
    assert pgserver.server().psql(url, "SELECT version FROM courier_schema").strip() == str(latest)
    tables = set(pgserver.server().psql(url, "SELECT tablename FROM pg_tables WHERE schemaname='public'").split())
    assert {"messages", "hops", "drafts", "lists", "sms_outbox", "outbox"} <= tables


async def test_several_domains_share_one_database_with_a_schema_each() -> None:
    url = pgserver.server().create_database()
    stores = [await Store.open(f"{url}?search_path={schema}") for schema in ("example_org", "example_net")]
    try:
        stores[0].queue_message(row(1))
        stores[1].queue_message(row(1, hid="hid-other-domain"))  # the same seq: another domain's table
        for s in stores:
            await s.flush()
        assert [(await s.message(1)).hid for s in stores] == ["hid-0001", "hid-other-domain"]  # type: ignore[union-attr]
    finally:
        for s in stores:
            await s.close()
    schemas = pgserver.server().psql(url, "SELECT schemaname FROM pg_tables WHERE tablename = 'messages'").split()
    assert sorted(schemas) == ["example_net", "example_org"]
