"""The small helpers every feature uses, each defined once: XEP-0082 timestamps and XEP-0106
escaping (background tasks: :mod:`component.tasks`).  No server imports (the client tool uses them)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from slixmpp.plugins import xep_0082

# -- timestamps (XEP-0082, through slixmpp's xep_0082) ------------------------------------


def stamp(t: float, ms: bool = True) -> str:
    """POSIX time *t* as a XEP-0082 date-time in UTC, with milliseconds unless *ms* is False."""
    moment = datetime.fromtimestamp(t, tz=UTC)
    whole = xep_0082.format_datetime(moment.replace(microsecond=0))  # YYYY-MM-DDThh:mm:ssZ
    return f"{whole[:-1]}.{moment.microsecond // 1000:03d}Z" if ms else whole


def parse_stamp(text: str) -> float:
    """A XEP-0082 date-time (a missing offset read as UTC) → POSIX time; ValueError if it is not one."""
    text = text.strip()
    if len(text) >= 20 and text[10] == "T" and text[-1] == "Z" and text[19] in ".Z":
        # the common form, 2026-11-23T10:00:00[.123]Z (ours and the server's): the quick parser
        # (strptime, in xep_0082.parse, was a few per cent of Courier's CPU at full rate)
        try:
            return datetime.fromisoformat(text).timestamp()
        except ValueError:
            pass  # e.g. more than 6 digits of fraction: the library's parser below
    try:
        moment = xep_0082.parse(text)
    except ValueError:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def stamp_or_now(text: str) -> float:
    """:func:`parse_stamp`, or now when *text* is not a date-time (a hand-off's stamp)."""
    try:
        return parse_stamp(text)
    except ValueError:
        return time.time()


# -- XEP-0106 escaping ---------------------------------------------------------------------

#: XEP-0106 §3.2: characters a localpart cannot hold, and their escapes ("\\" first, so that
#: escapes are not escaped again); slixmpp's ``unescape_node`` reads them back.
_ESCAPES = {
    "\\": "\\5c",
    " ": "\\20",
    '"': "\\22",
    "&": "\\26",
    "'": "\\27",
    "/": "\\2f",
    ":": "\\3a",
    "<": "\\3c",
    ">": "\\3e",
    "@": "\\40",
}


def escape_node(text: str) -> str:
    """XEP-0106 escaping of *text* for a JID localpart (slixmpp ships only :func:`unescape_node`)."""
    return "".join(_ESCAPES.get(c, c) for c in text)


__all__ = ["escape_node", "parse_stamp", "stamp"]
