"""Logs, signals and reloads: what a service manager (systemd) relies on.

* ``log.level`` applies in every mode (``courier up`` and ``courier run``);
* SIGTERM and SIGINT stop Courier cleanly (the run loop's *stop* event);
* SIGHUP re-reads the configuration file and applies the log level and the
  limits (requests, drafts, lists, the default undo-send window); options that need a new
  connection or store (JID, secret, ports, paths) need a restart and are logged
  as such;
* the last errors are kept for ``courier status`` (:data:`LAST_ERRORS`).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import logging
import signal
import time
from pathlib import Path
from typing import Any

from .. import config as configuration
from .. import metrics

log = logging.getLogger("courier")

#: The newest WARNING-or-worse records: (time, level, logger, message), for ``courier status``.
LAST_ERRORS: collections.deque[tuple[float, str, str, str]] = collections.deque(maxlen=20)

#: Options SIGHUP applies; any other change is reported as needing a restart.
RELOADABLE = (
    "log.level",
    "delivery.undo_window",
    "lists.max_members",
    "lists.max_lists",
    "lists.fanouts_per_minute",
    "drafts.max_pending",
    "drafts.max_length",
    "drafts.max_days_ahead",
    "admin.jids",
    "requests.per_second",
    "requests.burst",
)


class _Remember(logging.Handler):
    """Keeps the last warnings and errors, and counts errors."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            LAST_ERRORS.append((record.created, record.levelname, record.name, record.getMessage()[:500]))
            if record.levelno >= logging.ERROR:
                metrics.ERRORS.inc()
        except Exception:  # a log handler must never raise
            pass


_remember = _Remember(logging.WARNING)


def apply_log_level(level: str) -> None:
    """Set Courier's log level (``log.level``; slixmpp's own stays at WARNING, as ``main`` set it)."""
    root = logging.getLogger()
    root.setLevel(level.upper())
    if _remember not in root.handlers:
        root.addHandler(_remember)


class _SentStanza(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(str(record.args[0]) if isinstance(record.args, tuple) and record.args else "")


def record_sent_stanzas(path: Path) -> None:
    """Write every stanza Courier sends to *path*, one JSON string a line
    (``COURIER_RECORD_SENT``: a debugging aid, and how the tests check what Courier
    emits against the XML Schemas of ``xeps/``). slixmpp logs each write at DEBUG
    as ``SEND: …``; only those records go to the file, its warnings still reach the log."""
    stream_log = logging.getLogger("slixmpp.xmlstream.xmlstream")
    stream_log.setLevel(logging.DEBUG)
    stream_log.propagate = False
    sent = logging.FileHandler(path, encoding="utf-8")
    sent.addFilter(lambda record: record.msg == "SEND: %s")
    sent.setFormatter(_SentStanza())
    stream_log.addHandler(sent)

    class Upward(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                logging.getLogger().handle(record)

    stream_log.addHandler(Upward())


def reload(courier: Any) -> None:
    """SIGHUP: re-read the configuration file and apply what can change while running."""
    old = courier.config
    # `courier up` has no file: re-read the COURIER_* variables, keeping what up set itself
    kept = {} if old.path is not None else {n: v for n, v in old.values.items() if n not in RELOADABLE}
    try:
        new = configuration.load(old.path, **kept)
    except configuration.ConfigError as exc:
        log.error("SIGHUP: configuration not reloaded: %s", exc)
        return
    apply_log_level(new["log.level"])
    courier.pipeline.default_undo_window = new["delivery.undo_window"]
    for service, section in ((courier.drafts, "drafts"), (courier.lists, "lists")):
        fields = {f.name: new[f"{section}.{f.name}"] for f in dataclasses.fields(service.limits)}
        service.limits = dataclasses.replace(service.limits, **fields)
    courier.limiter.per_second = new["requests.per_second"]
    courier.limiter.burst = float(max(new["requests.burst"], 1))
    stale = sorted(n for n in new.values if n not in RELOADABLE and new[n] != old[n])
    for name in stale:  # still running with the old value until a restart
        new.values[name] = old[name]
    courier.config = new
    log.warning(
        "SIGHUP: configuration reloaded: log level %s; limits applied%s",
        new["log.level"].upper(),
        f"; {', '.join(stale)} changed but need a restart" if stale else "",
    )


def on_sighup(courier: Any) -> None:
    """SIGHUP reloads (SIGTERM/SIGINT already stop the run loop)."""
    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload, courier)
    except (NotImplementedError, RuntimeError):  # not the main thread (Courier run in-process by a test)
        pass


def uptime() -> float:
    return time.time() - (metrics.value("courier_start_time_seconds") or time.time())
