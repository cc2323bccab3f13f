"""Broadcast lists (P4): the values the service trades in — its limits and errors, a
fan-out's status and the aggregate of its copies' states."""

from __future__ import annotations

from dataclasses import dataclass

from slixmpp import JID
from slixmpp.jid import InvalidJID
from slixmpp.types import ErrorConditions, ErrorTypes

from ..delivery.states import State, hop_word
from ..store.lists import CopyRow, FanoutRow

#: The body of a retraction, for clients without XEP-0424 (the text XEP-0424 suggests).
RETRACT_FALLBACK = "This person attempted to retract a previous message, but it's unsupported by your client."
#: Copies originated at once (one group commit); between chunks Courier waits for the server
#: to have routed the previous chunk (:attr:`ListService.pace`), so other traffic interleaves.
CHUNK = 10
#: Fan-outs per owner kept in memory for the commands' forms.
RECENT = 10
#: Aggregate states of a fan-out, each copy counted once, in its current state.
AGGREGATE = ("held", "released", "sms", "sms-delivered", "received", "read", "recalled", "retracted", "failed")


class ListError(Exception):
    """An expected failure: an XMPP error condition, its type, and a sentence for the user."""

    def __init__(self, condition: ErrorConditions, text: str, etype: ErrorTypes = "cancel") -> None:
        super().__init__(text)
        self.condition = condition
        self.text = text
        self.etype = etype


@dataclass(frozen=True)
class Limits:
    """Configurable limits (``lists.*`` options)."""

    max_members: int = 500
    max_lists: int = 100
    fanouts_per_minute: int = 10


def copy_state(c: CopyRow) -> str:
    """One copy's state in courier-hops words (a copy not durable yet counts as sent)."""
    return hop_word(c.state or State.ACCEPTED.value, c.hold_reason)


def aggregate_state(state: str) -> str:
    """A courier-hops state as counted in the aggregate: still at the server = held."""
    return "held" if state in ("sent", "cached", "held") else state


@dataclass(slots=True)
class FanoutStatus:
    """A fan-out and where each of its copies is now."""

    fanout: FanoutRow
    copies: list[CopyRow]

    @property
    def total(self) -> int:
        return len(self.copies)

    @property
    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(AGGREGATE, 0)
        for c in self.copies:
            state = aggregate_state(copy_state(c))
            counts[state] = counts.get(state, 0) + 1  # (a state added later is counted, not fatal)
        return counts

    def summary(self) -> str:
        """“5 members: 3 released, 2 held”."""
        parts = [f"{n} {state}" for state, n in self.counts.items() if n]
        noun = "member" if self.total == 1 else "members"
        return f"{self.total} {noun}: " + ", ".join(parts) if parts else f"{self.total} {noun}"


def is_jid(text: str) -> bool:
    try:
        JID(text.strip())
    except InvalidJID:
        return False
    return True
