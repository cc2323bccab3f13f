"""Every configuration option, declared once: name, type, default and doc.

The TOML file, the ``COURIER_*`` environment variables and the README's
configuration table (``courier config-doc``) all come from :data:`OPTIONS`.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .store.engine import StoreURLError, parse_url


@dataclass(frozen=True)
class Option:
    """One option: ``section.key`` in TOML, ``COURIER_SECTION_KEY`` in the environment."""

    name: str
    type: type
    default: Any
    doc: str

    @property
    def env(self) -> str:
        return "COURIER_" + self.name.replace(".", "_").upper()


OPTIONS: tuple[Option, ...] = (
    Option("xmpp.domain", str, "localhost", "The Prosody virtual host whose users Courier serves."),
    Option("xmpp.jid", str, "", "Courier's component JID; empty means `courier.<domain>`."),
    Option("xmpp.secret", str, "", "The XEP-0114 component secret (Prosody's `component_secret`). Required."),
    Option("xmpp.host", str, "127.0.0.1", "Where Prosody's component port listens."),
    Option("xmpp.port", int, 5347, "Prosody's component port."),
    Option(
        "store.url",
        str,
        "",
        "The store: `sqlite:///PATH` (SQLite, `sqlite:////abs/path` absolute) or "
        "`postgresql://USER@HOST:PORT/DB` (PostgreSQL, with active/standby: docs/operators.md); "
        "empty: the SQLite file `store.path`.",
    ),
    Option("store.path", str, "var/courier.sqlite", "The SQLite database file (created with its directory)."),
    Option(
        "store.lease_poll",
        float,
        0.5,
        "PostgreSQL: how often (seconds) a standby Courier tries to take the lease of the active one.",
    ),
    Option(
        "store.synchronous",
        str,
        "normal",
        "SQLite `synchronous` in WAL mode: `normal` survives a crash of Courier or Prosody; "
        "`full` also survives power loss, at the cost of an fsync per commit.",
    ),
    Option("store.batch_max", int, 256, "At most this many operations are committed in one transaction."),
    Option(
        "store.retention_days",
        float,
        30.0,
        "Closed messages (delivered, recalled, failed…) and their hops are deleted this many days after "
        "their last change; 0 keeps them for ever. Messages still held are never deleted.",
    ),
    Option(
        "delivery.undo_window",
        float,
        0.0,
        "Default undo-send window in seconds: how long a message waits at the server even when the "
        "recipient is online, so that its sender can still edit or recall it. Users may set their own.",
    ),
    Option(
        "lists.max_members",
        int,
        500,
        "Broadcast lists: at most this many members in one list (and addresses in one XEP-0033 message).",
    ),
    Option("lists.max_lists", int, 100, "Broadcast lists: at most this many lists per user."),
    Option(
        "lists.fanouts_per_minute",
        int,
        10,
        "Broadcast lists: at most this many fan-outs (messages to a list or to XEP-0033 addresses) "
        "per user and minute.",
    ),
    Option(
        "requests.per_second",
        float,
        10.0,
        "Per user: IQs and bot commands Courier answers per second (refill of a token bucket); "
        "beyond it the user gets a `resource-constraint` error of type `wait`.",
    ),
    Option("requests.burst", int, 100, "Per user: how many requests may come at once before the rate applies."),
    Option("drafts.max_pending", int, 100, "Drafts: at most this many pending drafts per user."),
    Option("drafts.max_length", int, 10000, "Drafts: at most this many characters in one draft."),
    Option(
        "drafts.max_days_ahead",
        float,
        366.0,
        "Drafts: a time trigger may be at most this many days ahead.",
    ),
    # SMS fallback (P3): component/sms/; README "SMS fallback"
    Option("sms.enabled", bool, False, "SMS fallback, phone numbers and inbound SMS through Kannel."),
    Option("sms.kannel_url", str, "http://127.0.0.1:13013", "Kannel smsbox's sendsms port (`/cgi-bin/sendsms`)."),
    Option("sms.username", str, "courier", "Kannel `sendsms-user` username."),
    Option("sms.password", str, "", "Kannel `sendsms-user` password."),
    Option(
        "sms.sender",
        str,
        "",
        "The gateway's own number (E.164): verification codes, SMS of users without a verified number "
        "(prefixed with their JID); SMS to it go to whoever last wrote to that phone. Empty: Kannel's default.",
    ),
    Option("sms.listen_host", str, "127.0.0.1", "Where Courier serves Kannel's callbacks (MO SMS, delivery reports)."),
    Option("sms.listen_port", int, 13080, "Port of Courier's callback endpoint (`/sms/mo`, `/sms/dlr`)."),
    Option(
        "sms.public_url",
        str,
        "",
        "The callback endpoint's base URL as Kannel reaches it; empty: `http://<listen_host>:<listen_port>`.",
    ),
    Option("sms.secret", str, "", "Shared secret Kannel's callbacks must carry (`secret=`). Required with SMS."),
    Option("sms.region", str, "", "Numbers typed without `+` are read in this region (ISO code, e.g. `US`)."),
    Option(
        "sms.max_attempts",
        int,
        5,
        "Attempts to hand an SMS to a gateway that does not take it; then the message is `failed`.",
    ),
    Option("sms.retry_delay", float, 2.0, "Seconds before the first retry; doubles every attempt (at most 300)."),
    Option(
        "sms.fallback_delay",
        float,
        0.0,
        "Seconds a message waits for an offline recipient before it goes as SMS (XMPP wins meanwhile).",
    ),
    Option("sms.max_parts", int, 6, "Longest SMS in parts; longer texts are cut to fit, ending with `...`."),
    Option("sms.code_ttl", float, 600.0, "Seconds a verification code stays valid."),
    Option("sms.codes_per_hour", int, 3, "Verification codes per user (and per number) and hour."),
    Option("sms.parts_per_hour", int, 30, "SMS parts one user may cause per hour (fallback and direct)."),
    Option(
        "sms.encrypted_notice",
        str,
        "{sender} sent you an end-to-end encrypted message; open your XMPP app to read it.",
        "SMS fallback of an end-to-end encrypted message (OMEMO, OpenPGP): this notice goes as SMS "
        "instead (`{sender}` is the sender's JID), and the message waits for the recipient's XMPP app.",
    ),
    Option(
        "federation.resend_after",
        float,
        15.0,
        "Seconds after which a hop report to a peer Courier that it did not acknowledge is sent again.",
    ),
    Option("log.level", str, "INFO", "Log level: DEBUG, INFO, WARNING or ERROR (SIGHUP re-reads it)."),
    # operations: component/ops/, docs/operators.md
    Option(
        "metrics.port",
        int,
        0,
        "Serve OpenMetrics at `http://<metrics.host>:<port>/metrics` (and `/status` for `courier status`); 0: off.",
    ),
    Option("metrics.host", str, "127.0.0.1", "Address the metrics endpoint binds (loopback by default)."),
    Option(
        "admin.jids",
        str,
        "",
        "The server's admins (bare JIDs; a TOML list or comma-separated): they may run the admin commands.",
    ),
)

_BY_NAME = {o.name: o for o in OPTIONS}


class ConfigError(ValueError):
    """A configuration file or variable that cannot be used; the message says why."""


@dataclass
class Config:
    """Resolved configuration; read values with ``config["section.key"]``."""

    values: dict[str, Any] = field(default_factory=lambda: {o.name: o.default for o in OPTIONS})
    path: str | None = None  # the TOML file it was read from (SIGHUP re-reads it)

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    @property
    def domain(self) -> str:
        return str(self.values["xmpp.domain"])

    @property
    def jid(self) -> str:
        return str(self.values["xmpp.jid"] or f"courier.{self.domain}")

    @property
    def store_url(self) -> str:
        """``store.url``, or the SQLite file ``store.path`` when it is empty."""
        return str(self.values["store.url"] or self.values["store.path"])

    @property
    def admins(self) -> frozenset[str]:
        """``admin.jids`` as a set of bare JIDs."""
        return frozenset(j.strip().lower() for j in str(self.values["admin.jids"]).replace(",", " ").split())

    def set(self, name: str, value: Any, source: str = "") -> None:
        option = _BY_NAME.get(name)
        if option is None:
            raise ConfigError(f"unknown option {name!r}{' in ' + source if source else ''}")
        try:
            if option.type is bool and isinstance(value, str):
                value = value.lower() in ("1", "true", "yes", "on")
            if option.type is str and isinstance(value, list):  # a TOML list (admin.jids)
                value = ", ".join(str(v) for v in value)
            self.values[name] = option.type(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{name} must be {option.type.__name__}: {value!r} ({source})") from exc


def load(path: str | Path | None = None, env: dict[str, str] | None = None, **overrides: Any) -> Config:
    """Defaults, then the TOML file, then ``COURIER_*`` variables, then *overrides*."""
    config = Config(path=None if path is None else str(path))
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from exc
        for section, table in data.items():
            if not isinstance(table, dict):
                raise ConfigError(f"{path}: [{section}] must be a table")
            for key, value in table.items():
                config.set(f"{section}.{key}", value, str(path))
    environ = os.environ if env is None else env
    for option in OPTIONS:
        if option.env in environ:
            config.set(option.name, environ[option.env], option.env)
    for name, value in overrides.items():
        config.set(name, value, "command line")
    if not config["xmpp.secret"]:
        raise ConfigError("xmpp.secret is required (the component_secret Prosody has for " + config.jid + ")")
    try:
        parse_url(config.store_url)
    except StoreURLError as exc:
        raise ConfigError(str(exc)) from None
    if config["store.synchronous"] not in ("normal", "full"):
        raise ConfigError("store.synchronous must be 'normal' or 'full'")
    if config["sms.enabled"] and not config["sms.secret"]:
        raise ConfigError("sms.secret is required with sms.enabled (Kannel's callbacks must carry it)")
    return config


def markdown_table() -> str:
    """The README's configuration reference."""
    rows = ["| option (TOML `[section] key`) | environment | type | default | meaning |", "|---|---|---|---|---|"]
    for o in OPTIONS:
        rows.append(f"| `{o.name}` | `{o.env}` | {o.type.__name__} | `{o.default!r}` | {o.doc} |")
    return "\n".join(rows)
