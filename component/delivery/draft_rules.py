"""Drafts (P5): the words and rules of a draft — its trigger and limits, how the service
talks to people (:class:`Notifier`), the trigger and lateness in words, and the checks a
draft passes before it is stored (its target, text, action, trigger and number).

Pure: no store, no XMPP; used by :mod:`component.delivery.drafts` and the commands."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from slixmpp.jid import JID, InvalidJID

from ..store.drafts import ACTIONS, TRIGGERS, DraftRow
from ..when import TIME_SYNTAX, DraftInvalid, DraftLimit, DraftNotFound, format_time, parse_zone

#: A time trigger that fires more than this many seconds after its time is late.
LATE_AFTER = 2.0
#: A time a little in the past (a slow client, a clock a little off) fires at once; older ones are refused.
PAST_GRACE = 60.0
#: Due drafts claimed per store round trip.
CLAIM_BATCH = 100
#: The notice to a new device names at most this many drafts.
NOTICE_ITEMS = 3


@dataclass(frozen=True)
class Trigger:
    """When a draft fires."""

    kind: str = "manual"  # manual | at | target-online | message-from
    at: float | None = None  # at: UTC instant
    tz: str = ""  # at: the zone it was written in ("" = UTC)
    jid: str = ""  # message-from: the contact


@dataclass(frozen=True)
class Limits:
    """Per-user limits (config ``drafts.*``)."""

    max_pending: int = 100
    max_length: int = 10_000
    max_days_ahead: float = 366.0


class Notifier(Protocol):
    """What the service tells people (implemented on the XMPP side)."""

    def reminder(self, draft: DraftRow) -> None:
        """A remind trigger fired: show *draft* to its author with a one-step way to send it."""
        ...

    def fired(self, draft: DraftRow, how: str) -> None:
        """*draft* was sent by its trigger (*how*: what happened); late when ``draft.late``."""
        ...

    def pending(self, device: str, drafts: list[DraftRow]) -> None:
        """Device *device* (a full JID) of the author came online; *drafts* are pending."""
        ...


def describe_trigger(draft: DraftRow) -> str:
    """The trigger in words, for people."""
    if draft.trigger == "at" and draft.due_at is not None:
        return "at " + format_time(draft.due_at, draft.tz)
    if draft.trigger == "target-online":
        return f"when {draft.target} comes online"
    if draft.trigger == "message-from":
        return f"when {draft.trigger_jid} writes to you"
    return "when you send it"


def describe_late(draft: DraftRow) -> str:
    """``"" `` when on time, else how late, in words."""
    if draft.late <= LATE_AFTER:
        return ""
    seconds = int(draft.late)
    if seconds < 120:
        return f"{seconds} s late"
    if seconds < 7200:
        return f"{seconds // 60} min late"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min late"


def check_target(author: str, target: str) -> str:
    """The bare JID a draft of *author* is for; :class:`DraftInvalid` when it is none."""
    try:
        jid = JID(target.strip())
    except InvalidJID:
        raise DraftInvalid(f"“{target}” is not a JID (user@domain).") from None
    if not jid.user or not jid.domain:
        raise DraftInvalid(f"A draft is for a contact (user@domain), not “{target}”.")
    if jid.bare == author:
        raise DraftInvalid("A draft is for somebody else: use remind to send yourself a reminder about it.")
    return str(jid.bare)


def check_body(body: str, limits: Limits) -> str:
    if not body.strip():
        raise DraftInvalid("The draft's text is empty.")
    if len(body) > limits.max_length:
        raise DraftLimit(
            f"The draft is {len(body)} characters long; at most {limits.max_length} are allowed.", "length"
        )
    return body


def check_action(action: str) -> str:
    if action not in ACTIONS:
        raise DraftInvalid(f"The action is send or remind, not “{action}”.")
    return action


def check_trigger(trigger: Trigger, target: str, now: float, limits: Limits, domain: str) -> Trigger:
    """*trigger* checked for a draft to *target* (the time in the future and within limits, a
    target-online trigger for a local user, a contact for message-from), normalised."""
    if trigger.kind not in TRIGGERS:
        raise DraftInvalid(f"The trigger is manual, at, target-online or message-from, not “{trigger.kind}”.")
    if trigger.kind == "at":
        if trigger.at is None:
            raise DraftInvalid("A time trigger needs a time. " + TIME_SYNTAX)
        if trigger.at < now - PAST_GRACE:
            raise DraftInvalid(f"{format_time(trigger.at, trigger.tz)} has passed. " + TIME_SYNTAX)
        if trigger.at > now + limits.max_days_ahead * 86400:
            raise DraftLimit(
                f"{format_time(trigger.at, trigger.tz)} is too far ahead: at most "
                f"{limits.max_days_ahead:g} days are allowed.",
                "ahead",
            )
        if trigger.tz and parse_zone(trigger.tz) is None:
            raise DraftInvalid(f"“{trigger.tz}” is not a time zone (Europe/Paris, UTC, +02:00).")
        return Trigger("at", trigger.at, trigger.tz or "UTC")
    if trigger.kind == "target-online":
        if JID(target).domain != domain:
            raise DraftInvalid(f"Courier sees only when users of {domain} come online, not {target}.")
        return Trigger("target-online")
    if trigger.kind == "message-from":
        try:
            contact = JID(trigger.jid.strip())
        except InvalidJID:
            raise DraftInvalid(f"“{trigger.jid}” is not a JID (user@domain).") from None
        if not contact.user:
            raise DraftInvalid("Whose message should send it? Give a contact (user@domain).")
        # (a contact on another server too: mod_courier_route hands off what arrives over s2s)
        return Trigger("message-from", jid=str(contact.bare))
    return Trigger("manual")


def draft_number(number: int | str) -> int:
    """A draft's number as people write it (``3``, ``#3``); :class:`DraftNotFound` otherwise."""
    try:
        n = int(str(number).strip().lstrip("#"))
    except ValueError:
        raise DraftNotFound(f"You have no draft {number}.") from None
    if n < 1:
        raise DraftNotFound(f"You have no draft {number}.")
    return n
