"""The pipeline's ports: what it talks to (the XMPP side's :class:`Transport`, the SMS
side's :class:`SmsFallback`), what it takes in (:class:`Handoff`) and gives out
(:class:`Report`), and the errors its operations raise.  Imported by the parts of the
pipeline and, through :mod:`.pipeline`, by everything that uses it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from xml.etree import ElementTree as ET

from ..store import MessageRow
from ..util import stamp
from ..xep import e2ee


class NotFound(LookupError):
    """No message of the requester has that id (also when somebody else's has)."""


class TooLate(Exception):
    """The message has left the server (or was recalled): it can no longer be changed."""


class PassedOn(TooLate):
    """Too late at the recipient's server, and Courier passed the standard XEP-0424 retraction
    or XEP-0308 correction on itself: the sender's client must not send it again."""


class Invalid(ValueError):
    """A malformed request (an empty new text, an unknown receipt policy); the message says why."""


class Encrypted(ValueError):
    """The message is end-to-end encrypted: only the sender's client can change its text."""

    def __init__(self) -> None:
        super().__init__(e2ee.EDIT_REFUSED)


@dataclass(frozen=True, slots=True)
class Report:
    """One hop, as reported to the sender (courier-hops ``<report/>``)."""

    sender: str
    msg_id: str
    origin_id: str
    recipient: str
    state: str  # a courier-hops report state: sent, cached, held, released, ...
    at: float
    place: str
    note: str

    def fields(self) -> dict[str, str]:
        """The courier-hops ``<report/>``'s fields (the hops plugin's ``queue_report``)."""
        return {
            "id": self.msg_id, "origin_id": self.origin_id, "to": self.recipient, "state": self.state,
            "at": stamp(self.at), "place": self.place, "note": self.note,
        }  # fmt: skip


class SmsFallback(Protocol):
    """The SMS side (:class:`component.sms.service.SmsService`), for SMS fallback (P3)."""

    def held_offline(self, m: MessageRow) -> None:
        """*m* (a message with a body) now waits for its offline recipient: offer it as SMS."""
        ...


class Transport(Protocol):
    """What the pipeline needs from the XMPP side."""

    def ack(self, hid: str) -> None: ...

    def release(self, hid: str, inner: ET.Element, sender_bare: str) -> None: ...

    def release_copy(self, hid: str, to: str = "", now: bool = False) -> None:
        """Release hand-off *hid* by reference: the server routes the original it kept.  *to*:
        the recipient of a tracked message (toward a Courier peer the release adds ``<tracked/>``).
        *now*: written at once, not batched until the end of the event-loop turn."""
        ...

    def report(self, report: Report) -> None: ...

    def originate(self, inner: ET.Element, sender_bare: str, token: str | None = None) -> None:
        """Send a message Courier composed as *sender_bare* (their archive and devices see it);
        *token* identifies it in the server's confirmation."""
        ...

    def send_own(self, message: ET.Element, token: str) -> None:
        """Send a message from Courier's own JID (*message* as composed on the component's
        stream); *token* identifies it in the server's confirmation."""
        ...

    def notice(self, sender: str, recipient: str, policy: str) -> None:
        """Tell *sender* that *recipient* applies receipt *policy* to its messages."""
        ...


@dataclass
class Handoff:
    """One hand-off as the pipeline sees it."""

    hid: str
    recipient: str  # "online" | "offline" | "remote"
    inner: ET.Element  # the jabber:client message
    stamp: float  # when the server received it
    copy_kept: bool = False  # the server holds the original: it may be released by reference
    adds_tracked: bool = False  # ... and adds a <tracked/> given with that release (toward a peer)


def send_stored(transport: Transport, kind: str, token: str, stanza: str, sender: str) -> None:
    """Send one outbox entry (a release, an originated message, one from Courier's own JID)
    through *transport*."""
    if kind == "release":
        transport.release(token, ET.fromstring(stanza), sender)
    elif kind == "own":
        transport.send_own(ET.fromstring(stanza), token)
    else:
        transport.originate(ET.fromstring(stanza), sender, token)
