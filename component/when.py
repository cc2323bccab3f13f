"""Times as people write them, for drafts' triggers (P5) — ``at 09:00 Europe/Paris``,
``in 2h30m``, ISO 8601 — parsed and formatted; and the drafts' errors.  Pure (no I/O, no
server imports): the server's :mod:`component.delivery.drafts` and the client tool's
:mod:`component.cli.drafts` both use it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class DraftError(Exception):
    """A failure the author is told about; the message says why, for a person."""


class DraftNotFound(DraftError):
    """The requester has no such draft (also when somebody else has one with that number)."""


class DraftTooLate(DraftError):
    """The draft was already sent: it can no longer be changed, fired or deleted."""


class DraftInvalid(DraftError):
    """A malformed request: bad JID, empty text, unreadable time…"""


class DraftLimit(DraftError):
    """A per-user limit: too many pending drafts, too long, too far ahead."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind  # pending | length | ahead


# -- time expressions ----------------------------------------------------------------------------

_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_OFFSET = re.compile(r"^(?:UTC|GMT)?([+-])(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?:in)?)?(?:(\d+)s)?$", re.IGNORECASE)

TIME_SYNTAX = (
    "Times: “at 09:00” (the next 09:00, UTC), “at 09:00 Europe/Paris”, “at tomorrow 18:30 +02:00”, "
    "“at 2026-11-24T09:00+01:00” (ISO 8601), “at 2026-11-24 09:00 UTC”, or “in 10m” / “in 2h30m” / “in 1d”."
)


def parse_zone(token: str) -> tuple[tzinfo, str] | None:
    """``UTC``, ``Z``, ``+02:00`` / ``-0530`` / ``UTC+2``, or an IANA name (``Europe/Paris``); None if not a zone."""
    if token.upper() in ("UTC", "Z", "GMT"):
        return UTC, "UTC"
    m = _OFFSET.match(token)
    if m:
        sign = -1 if m.group(1) == "-" else 1
        hours, minutes = int(m.group(2)), int(m.group(3) or 0)
        if hours > 14 or minutes > 59:
            return None
        offset = timedelta(hours=hours, minutes=minutes) * sign
        return timezone(offset), f"{m.group(1)}{hours:02d}:{minutes:02d}"
    if "/" in token and ".." not in token:
        try:
            return ZoneInfo(token), token
        except (ZoneInfoNotFoundError, ValueError):
            return None
    return None


def zone_named(name: str) -> tzinfo:
    """The zone a draft was written in (UTC when none or unknown)."""
    found = parse_zone(name) if name else None
    return found[0] if found else UTC


def parse_duration(text: str) -> float | None:
    """``10m``, ``2h30m``, ``1d``, ``90s`` (``min`` for minutes too) → seconds; None if not a duration."""
    m = _DURATION.match(text)
    if not m or not any(m.groups()):
        return None
    d, h, mi, s = (int(g or 0) for g in m.groups())
    return float(((d * 24 + h) * 60 + mi) * 60 + s)


def take_time(tokens: list[str], now: float) -> tuple[float, str, int]:
    """Read a time at the start of *tokens* (the words after ``at``).

    Returns (UTC instant, zone name, words used); :class:`DraftInvalid` with the
    syntax when it cannot.
    """
    i, day = 0, None
    if tokens and tokens[0].lower() in ("today", "tomorrow"):
        day, i = tokens[0].lower(), 1
    if i >= len(tokens):
        raise DraftInvalid("When? " + TIME_SYNTAX)
    word = tokens[i]
    zone: tuple[tzinfo, str] | None = None
    if _CLOCK.match(word) or (_DATE.match(word) and i + 1 < len(tokens) and _CLOCK.match(tokens[i + 1])):
        date_word = None
        if _DATE.match(word):
            if day:
                raise DraftInvalid(f"Give either “{day}” or a date, not both. " + TIME_SYNTAX)
            date_word, word, i = word, tokens[i + 1], i + 1
        used = i + 1
        if used < len(tokens):
            zone = parse_zone(tokens[used])
            if zone:
                used += 1
        tz, zname = zone or (UTC, "UTC")
        m = _CLOCK.match(word)
        assert m is not None
        hour, minute, second = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
        if date_word:
            try:
                base = datetime.fromisoformat(date_word).date()
            except ValueError:
                raise DraftInvalid(f"“{date_word}” is not a date. " + TIME_SYNTAX) from None
        else:
            base = datetime.fromtimestamp(now, tz).date()
            if day == "tomorrow":
                base += timedelta(days=1)
        local = datetime(base.year, base.month, base.day, hour, minute, second, tzinfo=tz)
        if not date_word and day is None and local.timestamp() <= now:
            base += timedelta(days=1)  # "at 09:00" after nine: tomorrow's
            local = datetime(base.year, base.month, base.day, hour, minute, second, tzinfo=tz)
        return local.timestamp(), zname, used
    if day:
        raise DraftInvalid(f"“{day}” needs a time of day (HH:MM). " + TIME_SYNTAX)
    try:
        moment = datetime.fromisoformat(word.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise DraftInvalid(f"“{word}” is not a time. " + TIME_SYNTAX) from None
    used = i + 1
    if moment.tzinfo is None:
        if used < len(tokens):
            zone = parse_zone(tokens[used])
            if zone:
                used += 1
        tz, zname = zone or (UTC, "UTC")
        moment = moment.replace(tzinfo=tz)
    else:
        zname = _offset_name(moment)
    return moment.timestamp(), zname, used


def _offset_name(moment: datetime) -> str:
    offset = moment.utcoffset() or timedelta(0)
    if not offset:
        return "UTC"
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def parse_when(text: str, now: float) -> tuple[float, str]:
    """A whole time expression (a form field): ``09:00 Europe/Paris``, ``in 10m``, ISO 8601…"""
    tokens = text.split()
    if tokens and tokens[0].lower() == "at":
        tokens = tokens[1:]
    if not tokens:
        raise DraftInvalid("When? " + TIME_SYNTAX)
    if tokens[0].lower() == "in":
        seconds = parse_duration("".join(tokens[1:]))
        if seconds is None:
            raise DraftInvalid(f"“{text}” is not a duration. " + TIME_SYNTAX)
        return now + seconds, "UTC"
    seconds = parse_duration(tokens[0]) if len(tokens) == 1 else None
    if seconds is not None:  # "10m": "in" may be left out
        return now + seconds, "UTC"
    instant, zone, used = take_time(tokens, now)
    if used != len(tokens):
        raise DraftInvalid(f"I do not understand “{' '.join(tokens[used:])}” in “{text}”. " + TIME_SYNTAX)
    return instant, zone


def parse_instant(text: str) -> float:
    """An XEP-0082 date-time that names its zone (``Z`` or an offset), as the protocol requires."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise DraftInvalid(f"“{text}” is not an XEP-0082 date-time") from None
    if moment.tzinfo is None:
        raise DraftInvalid(f"“{text}” has no time zone: add Z (UTC) or an offset such as +01:00")
    return moment.timestamp()


def local_time(instant: float, zone: str) -> datetime:
    return datetime.fromtimestamp(instant, zone_named(zone))


def format_time(instant: float, zone: str = "") -> str:
    """``2026-11-24 09:00 Europe/Paris (08:00 UTC)``, or ``2026-11-24 08:00:30 UTC``.

    An instant a calendar cannot show (before the year 1 or after 9999, in its zone or in
    UTC: ``in 99999999d``) is described in words, so that the error that names it can be told.
    """
    try:
        return _format_time(instant, zone)
    except (OverflowError, OSError, ValueError):
        return "a time after the year 9999" if instant > 0 else "a time before the year 1"


def _format_time(instant: float, zone: str) -> str:
    local = local_time(instant, zone)
    fmt = "%Y-%m-%d %H:%M:%S" if local.second else "%Y-%m-%d %H:%M"
    text = f"{local.strftime(fmt)} {zone or 'UTC'}"
    if zone and zone != "UTC":
        utc = datetime.fromtimestamp(instant, UTC)
        text += f" ({utc.strftime('%H:%M:%S' if utc.second else '%H:%M')} UTC)"
    return text


__all__ = [
    "TIME_SYNTAX",
    "DraftError",
    "DraftInvalid",
    "DraftLimit",
    "DraftNotFound",
    "DraftTooLate",
    "format_time",
    "local_time",
    "parse_duration",
    "parse_instant",
    "parse_when",
    "parse_zone",
    "take_time",
    "zone_named",
]
