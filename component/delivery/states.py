"""The tracked-message state machine: states, events and the legal transitions.

Pure data and functions, no I/O (the model is h11's ``_state.py``).  Every hop
a message takes is an *event* applied to its *state*; the table below is the
whole of the delivery rules of DESIGN.md, and anything not in it raises
:class:`IllegalTransition`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class State(StrEnum):
    """Where a tracked message is in its life."""

    ACCEPTED = "accepted"  # stored at the sender's server (the patent's "sent")
    HELD = "held"  # waiting: recipient offline, or the sender's undo-send window
    RELEASED = "released"  # handed to the recipient's server
    RECEIVED = "received"  # the recipient's client acknowledged it (XEP-0184)
    READ = "read"  # the recipient's client displayed it (XEP-0333)
    RECALLED = "recalled"  # withdrawn before delivery; never forwarded
    RETRACTED = "retracted"  # a XEP-0424 retraction was passed on after delivery
    FAILED = "failed"  # could not be delivered (reason in the hop)
    SMS = "sms"  # the recipient was offline: submitted to the SMS gateway instead (P3)
    SMS_DELIVERED = "sms-delivered"  # the gateway's delivery report: it reached the phone


class Event(StrEnum):
    """What can happen to a tracked message; each names the hop it records."""

    HOLD = "held"
    RELEASE = "released"
    RECEIVE = "received"
    READ = "read"
    EDIT = "edited"
    RECALL = "recalled"
    RETRACT = "retracted"
    FAIL = "failed"
    SMS = "sms"
    SMS_DELIVER = "sms-delivered"


TERMINAL: frozenset[State] = frozenset({State.RECALLED, State.RETRACTED, State.FAILED, State.SMS_DELIVERED})
#: States in which the message is still at the sender's server and the sender controls it.
OPEN: frozenset[State] = frozenset({State.ACCEPTED, State.HELD})
DELIVERED: frozenset[State] = frozenset({State.RELEASED, State.RECEIVED, State.READ})
#: Sent as SMS instead (P3): the XMPP copy is never delivered, whatever happens later.
SMS_SENT: frozenset[State] = frozenset({State.SMS, State.SMS_DELIVERED})

TRANSITIONS: dict[tuple[State, Event], State] = {
    (State.ACCEPTED, Event.HOLD): State.HELD,
    (State.ACCEPTED, Event.RELEASE): State.RELEASED,
    (State.ACCEPTED, Event.EDIT): State.ACCEPTED,
    (State.ACCEPTED, Event.RECALL): State.RECALLED,
    (State.ACCEPTED, Event.FAIL): State.FAILED,
    (State.HELD, Event.HOLD): State.HELD,  # held again for another reason (window passed, recipient offline)
    (State.HELD, Event.RELEASE): State.RELEASED,
    (State.HELD, Event.EDIT): State.HELD,
    (State.HELD, Event.RECALL): State.RECALLED,
    (State.HELD, Event.FAIL): State.FAILED,
    (State.RELEASED, Event.RECEIVE): State.RECEIVED,
    (State.RELEASED, Event.READ): State.READ,
    (State.RECEIVED, Event.READ): State.READ,
    (State.RELEASED, Event.FAIL): State.FAILED,
    # After delivery an edit or retraction is passed on as the standard stanza.
    **{(s, Event.EDIT): s for s in DELIVERED},
    **{(s, Event.RETRACT): State.RETRACTED for s in DELIVERED},
    # SMS fallback (P3): a message held for an offline recipient is submitted to the gateway
    # (never both: from here on it is not released); a message to a phone number's JID is
    # submitted as soon as it is accepted.  The gateway's report ends it, or it fails.
    (State.HELD, Event.SMS): State.SMS,
    (State.ACCEPTED, Event.SMS): State.SMS,
    (State.SMS, Event.SMS_DELIVER): State.SMS_DELIVERED,
    (State.SMS, Event.FAIL): State.FAILED,
}


#: Hops recorded without a change of state.  An SMS *notice* of an end-to-end encrypted message
#: held for an offline recipient (P3: the text cannot go as SMS) is reported as an ``sms`` hop,
#: and the message stays held for XMPP.
ANNOTATIONS: frozenset[tuple[State, Event]] = frozenset({(State.HELD, Event.SMS)})


class IllegalTransition(ValueError):
    """An event that the current state does not allow."""

    def __init__(self, state: State, event: Event) -> None:
        super().__init__(f"a {state} message cannot be {event}")
        self.state = state
        self.event = event


def next_state(state: State, event: Event) -> State:
    """Return the state after *event*, or raise :class:`IllegalTransition`."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition(state, event) from None


@dataclass(frozen=True, slots=True)
class Hop:
    """One entry of a message's route record: what happened, when and where."""

    label: str  # the event's name, or "accepted" for the first hop
    state: State  # the state after this hop
    at: float  # POSIX time
    place: str  # the entity where it happened (a server or client JID)
    note: str = ""  # reason, route detail, retry information


def hop_word(label: str, hold_reason: str = "") -> str:
    """A state or hop label in courier-hops words (the one place they differ): ``accepted`` is
    reported as ``sent``, and ``held`` for an offline recipient (*hold_reason* or a stored hop's
    note ``recipient-offline``) as ``cached``."""
    if label == State.ACCEPTED.value:
        return "sent"
    if label == State.HELD.value and hold_reason == "recipient-offline":
        return "cached"
    return label


def accept(at: float, place: str, note: str = "") -> Hop:
    """The first hop of every tracked message."""
    return Hop(State.ACCEPTED.value, State.ACCEPTED, at, place, note)


def apply(state: State, event: Event, at: float, place: str, note: str = "") -> Hop:
    """Apply *event* to a message in *state* and return the hop to record."""
    return Hop(event.value, next_state(state, event), at, place, note)


def annotate(state: State, event: Event, at: float, place: str, note: str = "") -> Hop:
    """A hop of *event* that leaves a message in *state* (:data:`ANNOTATIONS`), or raise
    :class:`IllegalTransition`."""
    if (state, event) not in ANNOTATIONS:
        raise IllegalTransition(state, event)
    return Hop(event.value, state, at, place, note)
