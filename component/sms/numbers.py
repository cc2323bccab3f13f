"""Phone numbers: E.164 normalisation (libphonenumber's ``phonenumbers``) and number JIDs.

A phone number is addressed in XMPP as ``+<E.164>@<Courier's JID>``, e.g.
``+12025550143@courier.shakespeare.lit``.  E.164 needs no XEP-0106 escaping;
what a person or client types (``+1 202-555-0143``) is escaped when it is put
in a localpart and normalised when it is read back, so every spelling of a
number reaches the same JID.  The canonical JID is what ``jabber:iq:gateway``
(XEP-0100) answers.
"""

from __future__ import annotations

import phonenumbers
from slixmpp.jid import InvalidJID, unescape_node

from ..util import escape_node


class BadNumber(ValueError):
    """Not a valid phone number; the message says why, for the user."""


def normalize(text: str, region: str = "") -> str:
    """*text* as an E.164 number (``+12025550143``), or :class:`BadNumber`.

    Without a leading ``+`` the number is read in *region* (ISO 3166 code, e.g.
    ``US``); without a region it must be international.  The number must be
    valid by libphonenumber's metadata (a possible length is not enough).
    """
    cleaned = (text or "").strip()
    if not cleaned:
        raise BadNumber("No phone number given.")
    if cleaned.startswith("00"):
        cleaned = "+" + cleaned[2:]
    try:
        number = phonenumbers.parse(cleaned, region.upper() or None)
    except phonenumbers.NumberParseException:
        hint = "" if region else " in international format, like +12025550143"
        raise BadNumber(f"“{text}” is not a phone number{hint}.") from None
    if not phonenumbers.is_valid_number(number):
        raise BadNumber(f"“{text}” is not a valid phone number.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def display(e164: str) -> str:
    """A number in international format for people (``+1 202-555-0143``)."""
    try:
        return phonenumbers.format_number(phonenumbers.parse(e164, None), phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    except phonenumbers.NumberParseException:
        return e164


def number_jid(e164_or_raw: str, component: str) -> str:
    """The JID of a phone number (or of a sender that is not one, e.g. a short code) under *component*."""
    return f"{escape_node(e164_or_raw)}@{component}"


def _unescape(localpart: str) -> str:
    try:
        return unescape_node(localpart) if localpart else ""
    except InvalidJID:
        return localpart


def looks_like_number(localpart: str) -> bool:
    """Whether a localpart under Courier's JID names a phone number (``+`` or ``00`` first)."""
    text = _unescape(localpart).strip()
    return (text[:1] == "+" or text[:2] == "00") and any(c.isdigit() for c in text)


def number_of(localpart: str, region: str = "") -> str:
    """The E.164 number a number JID's localpart names (escaped or not), or :class:`BadNumber`."""
    return normalize(_unescape(localpart), region)
