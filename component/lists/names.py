"""List names and list JIDs (pure: no I/O).

A list of ``juliet@shakespeare.lit`` named ``Book club`` has the JID
``book\\20club+juliet@courier.shakespeare.lit``: the name, XEP-0106-escaped
and case-folded as every JID localpart is (nodeprep), then ``+``, then the
owner's localpart (as MIX proxy JIDs do, XEP-0369).  Names are unique per owner
in that form, so ``Book club`` and ``book CLUB`` are the same list; two owners
may both have a ``friends``.  A name may not contain ``+``: the JID is split at
its first ``+`` (an owner's localpart may contain one), nor start with ``00``:
localparts under Courier's JID that start with ``+`` or ``00`` are phone numbers
(SMS).  The owner is always a user of Courier's own domain, so the domain is not
repeated.

Temporary lists end at an instant; by default at the end of the current day in
UTC (:func:`end_of_day`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from slixmpp import JID
from slixmpp.jid import InvalidJID, unescape_node

from ..util import escape_node

MAX_NAME = 64
SEPARATOR = "+"
#: Localparts under Courier's JID that start with ``+`` or this are phone numbers (SMS), not lists.
PHONE_PREFIX = "00"


class BadName(ValueError):
    """A list name that cannot be used; the message says why."""


def clean_name(name: str) -> str:
    """*name* as stored (surrounding blanks removed), or :class:`BadName`."""
    name = name.strip()
    if not name:
        raise BadName("A list needs a name.")
    if len(name) > MAX_NAME:
        raise BadName(f"A list name has at most {MAX_NAME} characters.")
    if SEPARATOR in name:
        raise BadName(f"A list name cannot contain “{SEPARATOR}”.")
    if any(ord(c) < 32 for c in name):
        raise BadName("A list name cannot contain control characters.")
    return name


def key_for(name: str) -> str:
    """The name as it appears in the list's JID: escaped, then prepared (case-folded)."""
    name = clean_name(name)
    try:
        key = JID(f"{escape_node(name)}@x").user
    except InvalidJID:
        raise BadName(f"“{name}” cannot be part of an address; choose another name.") from None
    if not key or SEPARATOR in key:
        raise BadName(f"“{name}” cannot be part of an address; choose another name.")
    if key.startswith(PHONE_PREFIX):
        raise BadName("A list name cannot start with “00”: such addresses are phone numbers (SMS).")
    return str(key)


def list_jid(owner: str, key: str, component: str) -> str:
    """The JID of *owner*'s list *key* under Courier's JID *component*."""
    return f"{key}{SEPARATOR}{owner.partition('@')[0]}@{component}"


def is_list_node(node: str) -> bool:
    """Whether a localpart under Courier's JID has the shape of a list's (not a phone number's)."""
    return SEPARATOR in node[1:] and not node.startswith((SEPARATOR, PHONE_PREFIX))


def parse_list_jid(jid: JID, component: str, domain: str) -> tuple[str, str] | None:
    """(owner bare JID, key) of a list JID, or None when *jid* is not one."""
    node = jid.user
    if jid.domain != component or not is_list_node(node):
        return None
    key, _, owner_node = node.partition(SEPARATOR)
    if not owner_node:
        return None
    return f"{owner_node}@{domain}", key


def display_name(key: str) -> str:
    """A name back from its key (for lists found by JID only)."""
    return str(unescape_node(key))


def end_of_day(now: float) -> float:
    """The next midnight in UTC after *now*: when a temporary list ends by default."""
    day = datetime.fromtimestamp(now, tz=UTC).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
