"""The operations options: admin.jids as a TOML list or a variable, metrics off by default."""

from __future__ import annotations

from pathlib import Path

from component import config


def test_admins_from_a_toml_list_and_from_the_environment(tmp_path: Path) -> None:
    toml = tmp_path / "courier.toml"
    toml.write_text('[xmpp]\nsecret = "s"\n[admin]\njids = ["Admin@Example.org", "ops@example.org"]\n')
    assert config.load(toml, env={}).admins == {"admin@example.org", "ops@example.org"}
    from_env = config.load(None, env={"COURIER_XMPP_SECRET": "s", "COURIER_ADMIN_JIDS": "a@x, b@x c@x"})
    assert from_env.admins == {"a@x", "b@x", "c@x"}
    assert config.load(None, env={"COURIER_XMPP_SECRET": "s"}).admins == frozenset()


def test_metrics_are_off_by_default_and_bind_loopback() -> None:
    c = config.load(None, env={"COURIER_XMPP_SECRET": "s"})
    assert c["metrics.port"] == 0
    assert c["metrics.host"] == "127.0.0.1"
    assert c.path is None
