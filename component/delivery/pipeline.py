"""The delivery pipeline: hand-offs in, holds, edits, recalls and releases out.

Decisions are taken synchronously, in arrival order, on in-memory state (the
messages still at the server, who is online); their writes are queued to the
store and every visible effect (acknowledgement, release, hop report) waits
for the commit that makes the decision durable.  That keeps per-recipient
order and lets the store commit in batches.

The pipeline knows nothing of XMPP streams: it talks to a :class:`Transport`.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, Protocol
from xml.etree import ElementTree as ET

from .. import metrics
from ..namespaces import (
    NS_CLIENT,
    NS_CORRECT,
    NS_FASTEN,
    NS_HOPS,
    NS_MARKERS,
    NS_RECEIPTS,
    NS_RECEIPTS_POLICY,
    NS_RETRACT,
    NS_RETRACT0,
    NS_SID,
    NS_XHTML_IM,
    OUR_TAG_PREFIX,
)
from ..store import MessageRow, Store
from ..tasks import spawn
from ..xep import e2ee
from . import sender_copy
from .states import DELIVERED, Event, Hop, IllegalTransition, State, accept, annotate, apply, hop_word

log = logging.getLogger(__name__)

POLICIES = ("auto", "manual", "refuse")

#: How long hand-off ids are remembered in memory for de-duplication (the
#: server only re-sends hand-offs younger than its ack timeout).
HID_MEMORY = 900.0
#: ... and at most this many (oldest forgotten first): memory stays bounded at any rate.  The
#: server re-sends only un-acknowledged hand-offs (younger than its ack timeout, seconds), so
#: 200,000 covers minutes even at the highest rate measured on this machine.
HID_MAX = 200_000
#: Refs of recalled messages (and of those gone as SMS) stay indexed this long, so that a late
#: correction or retraction of them is absorbed; at most REF_MAX of them (oldest forgotten first).
REF_MEMORY = 86400.0
REF_MAX = 100_000
#: Acknowledgements: (namespace, element) -> the event it means for the acknowledged message.
ACKNOWLEDGEMENTS: dict[tuple[str, str], Event] = {
    (NS_RECEIPTS, "received"): Event.RECEIVE,
    (NS_MARKERS, "received"): Event.RECEIVE,
    (NS_MARKERS, "displayed"): Event.READ,
    (NS_MARKERS, "acknowledged"): Event.READ,
}


class NotFound(LookupError):
    """No message of the requester has that id (also when somebody else's has)."""


class TooLate(Exception):
    """The message has left the server (or was recalled): it can no longer be changed."""


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


class SmsFallback(Protocol):
    """The SMS side (:class:`component.sms.service.SmsService`), for SMS fallback (P3)."""

    def held_offline(self, m: MessageRow) -> None:
        """*m* (a message with a body) now waits for its offline recipient: offer it as SMS."""
        ...


class Transport(Protocol):
    """What the pipeline needs from the XMPP side."""

    def ack(self, hid: str) -> None: ...

    def release(self, hid: str, inner: ET.Element, sender_bare: str) -> None: ...

    def report(self, report: Report) -> None: ...

    def originate(self, inner: ET.Element, sender_bare: str, token: str | None = None) -> None:
        """Send a message Courier composed as *sender_bare* (their archive and devices see it);
        *token* identifies it in the server's confirmation."""
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


def _bare(jid: str) -> str:
    return jid.split("/", 1)[0]


def _domain(jid: str) -> str:
    return _bare(jid).rpartition("@")[2]


def _refs(inner: ET.Element) -> tuple[str, str]:
    origin = inner.find(f"{{{NS_SID}}}origin-id")
    return inner.get("id", ""), (origin.get("id", "") if origin is not None else "")


def _retract_ref(inner: ET.Element) -> str | None:
    retract = inner.find(f"{{{NS_RETRACT}}}retract")
    if retract is not None:
        return retract.get("id") or None
    fasten = inner.find(f"{{{NS_FASTEN}}}apply-to")
    if fasten is not None and fasten.find(f"{{{NS_RETRACT0}}}retract") is not None:
        return fasten.get("id") or None
    return None


def _replace_ref(inner: ET.Element) -> str | None:
    replace = inner.find(f"{{{NS_CORRECT}}}replace")
    return (replace.get("id") or None) if replace is not None else None


def _acknowledgement(inner: ET.Element) -> tuple[str, Event] | None:
    """A XEP-0184 receipt or XEP-0333 marker: (the acknowledged id, its event)."""
    for child in inner:
        ns, _, name = child.tag[1:].partition("}")
        event = ACKNOWLEDGEMENTS.get((ns, name))
        if event is not None and child.get("id"):
            return child.get("id", ""), event
    return None


def _body(inner: ET.Element) -> str | None:
    body = inner.find(f"{{{NS_CLIENT}}}body")
    return body.text or "" if body is not None else None


def _text(inner: ET.Element) -> str | None:
    """The text Courier may show or send on: None for an end-to-end encrypted message, whose
    ``<body/>`` is only a fallback sentence ("I sent you an OMEMO encrypted message…")."""
    return None if e2ee.is_encrypted(inner) else _body(inner)


def encrypted(m: MessageRow) -> bool:
    """Whether tracked message *m* is end-to-end encrypted (Courier never reads its payload)."""
    return e2ee.stanza_encrypted(m.stanza)


def strip_ours(inner: ET.Element) -> None:
    """Remove every element of our namespaces a client put on a message (forgeries), at any
    depth: one nested in a foreign element would otherwise reach the recipient as Courier's."""
    for parent in list(inner.iter()):
        for child in [c for c in parent if isinstance(c.tag, str) and c.tag.startswith(OUR_TAG_PREFIX)]:
            parent.remove(child)


class Pipeline:
    """Tracked messages from hand-off to release."""

    def __init__(self, store: Store, transport: Transport, domain: str, default_undo_window: float = 0.0) -> None:
        self.store = store
        self.transport = transport
        self.domain = domain
        self.default_undo_window = default_undo_window
        self.seq = 0
        self.open: dict[int, MessageRow] = {}
        self.queues: defaultdict[str, list[int]] = defaultdict(list)
        # (sender, recipient_bare, id or origin-id) -> seq, for held and recalled messages
        self.by_ref: dict[tuple[str, str, str], int] = {}
        self.known_hids: OrderedDict[str, tuple[float, int]] = OrderedDict()
        #: closed messages whose refs are still in by_ref: seq -> (closed at, the by_ref keys)
        self.closed_refs: OrderedDict[int, tuple[float, list[tuple[str, str, str]]]] = OrderedDict()
        self.available: defaultdict[str, set[str]] = defaultdict(set)
        self.undo_windows: dict[str, float] = {}
        self.report_defaults: set[str] = set()
        self.policies: dict[tuple[str, str], str] = {}  # (user, contact or '') -> auto|manual|refuse
        self.notified: dict[tuple[str, str], str] = {}  # (sender, recipient) -> policy told
        #: Observers (drafts, lists…): a user's message was handed off (sender, recipient_bare),
        #: and a local user became available (bare JID).  Called synchronously; keep them quick.
        self.message_observers: list[Callable[[str, str], None]] = []
        self.available_observers: list[Callable[[str], None]] = []
        #: ... and each device (full JID) that becomes available, every time.
        self.resource_observers: list[Callable[[str], None]] = []
        #: ... and every hop recorded (message, hop), after its commit (chat reports).
        self.hop_observers: list[Callable[[MessageRow, Hop], None]] = []
        #: SMS fallback (P3, component/sms/): told of every message held for an offline recipient.
        #: A message whose submission as SMS is under way (sms_claim) is not released meanwhile,
        #: and once submitted never is: never both.  Messages to phone numbers' JIDs under
        #: sms_domain (Courier's JID) are the SMS side's alone.
        self.sms: SmsFallback | None = None
        self.sms_domain: str | None = None
        self.sms_inflight: set[int] = set()
        self._due: list[tuple[float, int]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- start-up ---------------------------------------------------------

    async def start(self) -> None:
        """Load what survived a restart: held messages, recent hand-off ids, settings."""
        self.seq = await self.store.max_seq()
        for m in await self.store.open_messages():
            if self.sms_domain is not None and _domain(m.recipient_bare) == self.sms_domain:
                continue  # a message to a phone number waiting for its SMS: the SMS side's
            self._index_open(m)
        now = time.time()
        for hid, seq in (await self.store.recent_handoffs(now - HID_MEMORY)).items():
            self.known_hids[hid] = (now, seq)
        self.undo_windows = await self.store.undo_windows()
        self.report_defaults = await self.store.report_defaults()
        self.policies = await self.store.receipt_policies()
        self.notified = await self.store.policy_notices()
        if self.open:
            log.info("%d held messages waiting for their recipients", len(self.open))
        self._schedule()

    def _index_open(self, m: MessageRow) -> None:
        self.open[m.seq] = m
        self.queues[m.recipient_bare].append(m.seq)
        self._index_ref(m)
        if m.release_at is not None:
            heapq.heappush(self._due, (m.release_at, m.seq))

    def _index_ref(self, m: MessageRow) -> None:
        for ref in (m.msg_id, m.origin_id):
            if ref:
                self.by_ref[(m.sender, m.recipient_bare, ref)] = m.seq

    def _unindex_ref(self, m: MessageRow) -> None:
        """A released message: later corrections and retractions of it are passed on."""
        for ref in (m.msg_id, m.origin_id):
            if ref and self.by_ref.get((m.sender, m.recipient_bare, ref)) == m.seq:
                del self.by_ref[(m.sender, m.recipient_bare, ref)]
        self.closed_refs.pop(m.seq, None)

    def _forget_closed_refs(self, now: float) -> None:
        """Bound by_ref: refs of closed messages older than REF_MEMORY, or beyond REF_MAX, go."""
        while self.closed_refs:
            seq, (t, keys) = next(iter(self.closed_refs.items()))
            if now - t < REF_MEMORY and len(self.closed_refs) <= REF_MAX:
                break
            self.closed_refs.popitem(last=False)
            for key in keys:
                if self.by_ref.get(key) == seq:
                    del self.by_ref[key]

    # -- presence ------------------------------------------------------------

    def presence(self, full_jid: str, available: bool) -> None:
        """A local user's resource became available or unavailable."""
        bare = _bare(full_jid)
        resources = self.available[bare]
        if available:
            came_online = not (resources - {"?"})
            new_device = full_jid not in resources
            resources.add(full_jid)
            resources.discard("?")
            self.flush(bare)
            if came_online:
                for observer in self.available_observers:
                    observer(bare)
            if new_device:
                for device_observer in self.resource_observers:
                    device_observer(full_jid)
        else:
            resources.discard(full_jid)
            if not resources or resources == {"?"}:
                del self.available[bare]

    def online(self, bare: str) -> bool:
        return bool(self.available.get(bare))

    # -- settings --------------------------------------------------------------

    def undo_window(self, sender: str) -> float:
        return self.undo_windows.get(sender, self.default_undo_window)

    async def set_undo_window(self, sender: str, seconds: float | None) -> None:
        await self.store.set_undo_window(sender, seconds)
        if seconds is None:
            self.undo_windows.pop(sender, None)
        else:
            self.undo_windows[sender] = seconds

    def reports_on(self, sender: str) -> bool:
        return sender in self.report_defaults

    async def set_reports(self, sender: str, on: bool) -> None:
        await self.store.set_reports(sender, on)
        (self.report_defaults.add if on else self.report_defaults.discard)(sender)

    # -- receipt policies (P2) -----------------------------------------------------

    def policy_of(self, user: str, contact: str) -> str:
        """The receipt policy *user* applies to *contact*: per contact, else default, else auto."""
        return self.policies.get((user, contact)) or self.policies.get((user, "")) or "auto"

    def policies_of(self, user: str) -> tuple[str, dict[str, str]]:
        """*user*'s default policy and per-contact overrides."""
        overrides = {c: p for (u, c), p in self.policies.items() if u == user and c}
        return self.policies.get((user, ""), "auto"), overrides

    async def set_policy(self, user: str, contact: str, policy: str | None) -> None:
        if policy is not None and policy not in POLICIES:
            raise ValueError("a receipt policy is auto, manual or refuse")
        await self.store.set_receipt_policy(user, contact, policy)
        if policy is None:
            self.policies.pop((user, contact), None)
        else:
            self.policies[(user, contact)] = policy

    def _apply_policy(self, inner: ET.Element, sender: str, recipient_bare: str, asked: bool, now: float) -> None:
        """Before a message is stored: strip receipt requests the recipient refuses, tell the sender once."""
        if _domain(recipient_bare) != self.domain:
            return
        policy = self.policy_of(recipient_bare, sender)
        told = self.notified.get((sender, recipient_bare))
        if policy == "refuse":
            for tag in (f"{{{NS_RECEIPTS}}}request", f"{{{NS_MARKERS}}}markable"):
                for element in inner.findall(tag):
                    inner.remove(element)
            if asked and told != "refuse":
                self.notified[(sender, recipient_bare)] = policy
                self.store.queue_policy_notice(sender, recipient_bare, policy, now)
                self._after_commit(lambda: self.transport.notice(sender, recipient_bare, policy))
        elif told == "refuse":  # the policy changed: tell again should it be refused again
            self.notified[(sender, recipient_bare)] = policy
            self.store.queue_policy_notice(sender, recipient_bare, policy, now)

    async def confirm(self, user: str, ref: str, sender: str | None = None) -> MessageRow:
        """*user* confirms receiving message *ref* (manual policy): the receipt goes to its sender."""
        await self.store.flush()
        m = await self.store.find_received(user, ref, sender)
        if m is None:
            raise NotFound(ref)
        receipt = ET.Element(f"{{{NS_CLIENT}}}message", {"to": m.sender, "type": "chat", "id": uuid.uuid4().hex})
        ET.SubElement(receipt, f"{{{NS_RECEIPTS}}}received", id=m.msg_id or m.origin_id)
        now = time.time()
        try:
            hop = apply(m.state, Event.RECEIVE, now, _domain(user), f"confirmed by {user}")
        except IllegalTransition:
            hop = None
        if hop is not None:
            m.state, m.updated = hop.state, now
            self._record(m, hop)
            self.store.queue_update(m)
        self._send_after_commit(None, ET.tostring(receipt, encoding="unicode"), user)
        await self.store.flush()
        return m

    # -- recording ---------------------------------------------------------------

    def _record(self, m: MessageRow, hop: Hop) -> None:
        """Queue *hop* of *m*; report it to the sender after the commit if they asked."""
        self.store.queue_hop(m.seq, hop)
        metrics.hop(m, hop)
        for observer in self.hop_observers:
            self.store.after_commit(lambda observer=observer: observer(m, hop))  # type: ignore[misc]
        if m.reports:
            report = Report(
                m.sender,
                m.msg_id,
                m.origin_id,
                m.recipient_bare,
                hop_word(hop.label, m.hold_reason),
                hop.at,
                hop.place,
                hop.note,
            )
            self.store.after_commit(lambda: self.transport.report(report))

    def _after_commit(self, effect: Callable[[], None]) -> None:
        self.store.after_commit(effect)

    def _send_after_commit(self, hid: str | None, stanza: str, sender: str) -> None:
        """Release hand-off *hid* (None: originate a message) once committed; kept in the
        outbox, in the same commit, until the server confirms it routed it (re-sent meanwhile)."""
        token = hid or uuid.uuid4().hex
        kind = "release" if hid else "originate"
        self.store.queue_outbox(token, kind, sender, stanza, time.time())
        self._after_commit(lambda: send_stored(self.transport, kind, token, stanza, sender))

    # -- hand-offs -------------------------------------------------------------

    def handoff(self, h: Handoff) -> None:
        """Process one hand-off (synchronously; effects follow the commit)."""
        now = time.time()
        self._forget_old_hids(now)
        self._forget_closed_refs(now)
        if h.hid in self.known_hids:
            self._spawn(self._answer_again(h, self.known_hids[h.hid][1]))
            return
        inner = h.inner
        sender_full = inner.get("from", "")
        sender = _bare(sender_full)
        recipient = inner.get("to", "")
        recipient_bare = _bare(recipient)
        asked = inner.find(f"{{{NS_HOPS}}}request") is not None or inner.find(f"{{{NS_RECEIPTS}}}request") is not None
        declined = inner.find(f"{{{NS_RECEIPTS_POLICY}}}no-request") is not None
        wants_reports = not declined and (asked or sender in self.report_defaults)
        strip_ours(inner)

        # Remember what the server says about the recipient right now.
        if h.recipient == "online" and not self.available.get(recipient_bare):
            self.available[recipient_bare].add("?")
        elif h.recipient == "offline":
            self.available.pop(recipient_bare, None)

        body = _body(inner)
        retract_ref = _retract_ref(inner)
        if body is None and retract_ref is None:
            acknowledgement = _acknowledgement(inner)
            if acknowledgement is not None:
                self._acknowledged(h, inner, sender, recipient_bare, *acknowledgement, now)
                return
        replace_ref = None if retract_ref else _replace_ref(inner)
        ref = retract_ref or replace_ref
        if ref is not None:
            target_seq = self.by_ref.get((sender, recipient_bare, ref))
            if target_seq is not None:
                if self._apply_to_held(h, target_seq, retract_ref is not None, inner, sender_full, now):
                    return
            else:
                self._spawn(self._note_on_delivered(sender, recipient_bare, ref, retract_ref is not None, now))
        kind = "retraction" if retract_ref else "correction" if replace_ref else "message"
        if kind == "message":
            self._apply_policy(inner, sender, recipient_bare, asked and not declined, now)
        self._track(h.hid, h.recipient, h.stamp, inner, kind, sender_full, sender, recipient, recipient_bare,
                    wants_reports, now)  # fmt: skip
        if kind == "message":
            for observer in self.message_observers:
                observer(sender, recipient_bare)

    def _track(
        self,
        hid: str | None,  # None: a message Courier originates
        where: str,  # the recipient: online | offline | remote
        stamp: float,  # when it reached the server
        inner: ET.Element,
        kind: str,
        sender_full: str,
        sender: str,
        recipient: str,
        recipient_bare: str,
        wants_reports: bool,
        now: float,
        note: str = "",
    ) -> None:
        self.seq += 1
        seq = self.seq
        msg_id, origin_id = _refs(inner)
        accepted = accept(stamp, self.domain, note or f"from {sender_full}")
        window = self.undo_window(sender)
        release_at = stamp + window if window > 0 and stamp + window > now else None
        queue = self.queues.get(recipient_bare)
        remote = where == "remote"
        if where == "unknown":
            hop = apply(State.ACCEPTED, Event.FAIL, now, self.domain, "item-not-found: no such user")
            reason = ""
            release_at = None
        elif release_at is None and not queue and (remote or self.online(recipient_bare)):
            note = "to a remote server" if remote else "recipient online"
            hop = apply(State.ACCEPTED, Event.RELEASE, now, _domain(recipient_bare), note)
            reason = ""
        else:
            if release_at is not None:
                reason = "undo-window"
            elif remote or self.online(recipient_bare):
                reason = "queued"  # behind an older message still in its undo-send window
            else:
                reason = "recipient-offline"
            hop = apply(State.ACCEPTED, Event.HOLD, now, self.domain, reason)
        row = MessageRow(
            seq, hid, sender, sender_full.partition("/")[2], recipient, recipient_bare, msg_id, origin_id,
            kind, _text(inner), ET.tostring(inner, encoding="unicode"), hop.state, reason, release_at, now, now,
            wants_reports,
        )  # fmt: skip
        if hid is not None:
            self.known_hids[hid] = (now, seq)
        self.store.queue_message(row)
        self._record(row, accepted)
        self._record(row, hop)
        if hop.state is State.FAILED:
            pass  # the server did not wait for us: it bounces its own error to the sender
        elif hop.state is State.RELEASED:
            self._send_after_commit(hid, row.stanza, sender)
        else:
            self._index_open(row)
            if hid is not None:
                self._after_commit(lambda: self.transport.ack(hid))
            if reason == "recipient-offline":
                self._offer_sms(row)
            if release_at is not None:
                self._schedule()
            elif reason == "queued" and (remote or self.online(recipient_bare)):
                self.flush(recipient_bare)  # older messages were waiting for a recipient who is here now

    def _apply_to_held(
        self, h: Handoff, target_seq: int, is_retract: bool, inner: ET.Element, sender_full: str, now: float
    ) -> bool:
        """Edit or recall a message still at the server with a XEP-0308/0424 stanza."""
        target = self.open.get(target_seq)
        hid = h.hid
        self.known_hids[hid] = (now, target_seq)
        if target is None or target_seq in self.sms_inflight:
            # Recalled before (nothing of it ever reaches the recipient, nor of this), or gone or
            # going as SMS (an SMS cannot be changed).
            self.store.queue_absorbed(hid, target_seq, "dropped", now)
        elif is_retract:
            self._recall_held(target, f"by {sender_full}", now)
            self.store.queue_absorbed(hid, target.seq, "recalled", now)
        else:
            self._correct_held(target, inner, f"by {sender_full}", now)
            self.store.queue_absorbed(hid, target.seq, "edited", now)
        self._after_commit(lambda: self.transport.ack(hid))
        return True

    def _recall_held(self, target: MessageRow, note: str, now: float) -> None:
        hop = apply(target.state, Event.RECALL, now, self.domain, note)
        self._close(target)
        target.state, target.updated = hop.state, now
        self._record(target, hop)
        self.store.queue_update(target)
        self.flush(target.recipient_bare)  # later messages may have waited behind it

    def _edit_held(self, target: MessageRow, new_body: str, note: str, now: float) -> None:
        hop = apply(target.state, Event.EDIT, now, self.domain, note)
        original = ET.fromstring(target.stanza)
        body = original.find(f"{{{NS_CLIENT}}}body")
        if body is None:
            body = ET.SubElement(original, f"{{{NS_CLIENT}}}body")
        body.text = new_body
        for html in original.findall(f"{{{NS_XHTML_IM}}}html"):
            original.remove(html)
        target.body = new_body
        target.stanza = ET.tostring(original, encoding="unicode")
        target.updated = now
        self._record(target, hop)
        self.store.queue_update(target)

    def _correct_held(self, target: MessageRow, correction: ET.Element, note: str, now: float) -> None:
        """A XEP-0308 correction from the sender's client: its whole payload-bearing part (body,
        encrypted elements, EME, fallback markers) replaces the held message's."""
        hop = apply(target.state, Event.EDIT, now, self.domain, note)
        original = ET.fromstring(target.stanza)
        e2ee.swap_payload(original, correction)
        target.body = _text(original)
        target.stanza = ET.tostring(original, encoding="unicode")
        target.updated = now
        self._record(target, hop)
        self.store.queue_update(target)

    def _acknowledged(
        self, h: Handoff, inner: ET.Element, sender: str, recipient_bare: str, ref: str, event: Event, now: float
    ) -> None:
        """A receipt or marker from *sender* (the recipient of the acknowledged message)."""
        policy = self.policy_of(sender, recipient_bare)
        if policy == "refuse" or (policy == "manual" and event is Event.RECEIVE):
            # Withheld: an automatic receipt under "manual", anything under "refuse".
            self.known_hids[h.hid] = (now, -1)
            self.transport.ack(h.hid)
            return
        # It goes on at once: nothing of the acknowledgement needs to wait for the store.
        self.known_hids[h.hid] = (now, 0)
        self.transport.release(h.hid, inner, sender)
        self._spawn(self._note_acknowledgement(recipient_bare, sender, ref, event, now))

    async def _note_acknowledgement(
        self, original_sender: str, recipient: str, ref: str, event: Event, now: float
    ) -> None:
        target = await self.store.find_message(original_sender, recipient, ref)
        if target is None:
            return
        live = self.open.get(target.seq)  # (cannot happen: acknowledged before release)
        if live is not None:
            return
        try:
            hop = apply(target.state, event, now, _domain(recipient), f"by {recipient}")
        except IllegalTransition:
            return  # e.g. "received" after "read", or a duplicate: nothing new to say
        target.state, target.updated = hop.state, now
        self._record(target, hop)
        self.store.queue_update(target)

    def _close(self, m: MessageRow) -> None:
        """Take *m* off the open set and its recipient's queue (its refs stay, for late edits,
        until :meth:`_forget_closed_refs` or :meth:`_unindex_ref`)."""
        self.open.pop(m.seq, None)
        keys = [(m.sender, m.recipient_bare, ref) for ref in (m.msg_id, m.origin_id) if ref]
        if keys:
            self.closed_refs[m.seq] = (time.time(), keys)
        queue = self.queues.get(m.recipient_bare)
        if queue is not None:
            try:
                queue.remove(m.seq)
            except ValueError:
                pass
            if not queue:
                del self.queues[m.recipient_bare]

    # -- release -----------------------------------------------------------------

    def flush(self, recipient_bare: str) -> None:
        """Release, in order, every message for *recipient_bare* that may go now."""
        queue = self.queues.get(recipient_bare)
        if not queue:
            return
        now = time.time()
        online = self.online(recipient_bare)
        remote = _domain(recipient_bare) != self.domain
        while queue:
            m = self.open[queue[0]]
            if m.seq in self.sms_inflight:
                break  # being submitted as SMS right now: it, and what follows, waits for the outcome
            if m.release_at is not None and m.release_at > now:
                break
            if not (online or remote):
                if m.hold_reason != "recipient-offline":
                    m.hold_reason, m.release_at, m.updated = "recipient-offline", None, now
                    self._record(m, apply(m.state, Event.HOLD, now, self.domain, "recipient-offline"))
                    self.store.queue_update(m)
                    self._offer_sms(m)
                break
            self._release(m, now, "to a remote server" if remote else "recipient online")
        if not queue:
            self.queues.pop(recipient_bare, None)

    def _release(self, m: MessageRow, now: float, note: str) -> None:
        hop = apply(m.state, Event.RELEASE, now, _domain(m.recipient_bare), note)
        m.state, m.updated, m.hold_reason, m.release_at = hop.state, now, "", None
        self._close(m)
        self._unindex_ref(m)
        self._record(m, hop)
        self.store.queue_update(m)
        self._send_after_commit(m.hid, m.stanza, m.sender)

    def fallback(self, hids: Iterable[str]) -> None:
        """The server delivered these hand-offs itself: never release them."""
        now = time.time()
        for hid in metrics.fallbacks(self, hids):
            known = self.known_hids.get(hid)
            if known is None:
                # Older than the in-memory window (a notice re-sent at reconnect): ask the store.
                self._spawn(self._fallback_stored(hid))
                continue
            m = self.open.get(known[1])
            if m is not None and m.hid == hid:
                log.warning(
                    "Message %d (%s -> %s) was delivered by the server's fallback", m.seq, m.sender, m.recipient
                )
                note = "delivered by the server (fallback: Courier was late)"
                hop = apply(m.state, Event.RELEASE, now, self.domain, note)
                m.state, m.updated, m.hold_reason, m.release_at = hop.state, now, "", None
                self._close(m)
                self._unindex_ref(m)
                self._record(m, hop)
                self.store.queue_update(m)
                self.flush(m.recipient_bare)

    async def _fallback_stored(self, hid: str) -> None:
        await self.store.flush()
        m = await self.store.message_by_hid(hid)
        if m is not None:
            self.known_hids[hid] = (time.time(), m.seq)
            self.fallback([hid])

    # -- SMS fallback (P3) -----------------------------------------------------------

    def _offer_sms(self, m: MessageRow) -> None:
        if self.sms is not None and m.kind == "message":
            self.sms.held_offline(m)  # it decides: the text as SMS, a notice for an encrypted one

    def waiting_offline(self, seq: int) -> MessageRow | None:
        """Held message *seq*, if it still waits for an offline recipient (for an SMS notice,
        which leaves the message held for XMPP)."""
        m = self.open.get(seq)
        if m is None or m.state is not State.HELD or m.hold_reason != "recipient-offline":
            return None
        return None if self.online(m.recipient_bare) else m

    async def sms_notice_hop(self, seq: int, place: str, note: str) -> MessageRow | None:
        """Record that an SMS *notice* of held message *seq* went out (hop ``sms``): the message
        itself stays held for XMPP.  None if it is not held any more.  Durable when this returns."""
        m = self.open.get(seq)
        if m is None:
            return None
        try:
            hop = annotate(m.state, Event.SMS, time.time(), place, note)
        except IllegalTransition:
            return None
        self._record(m, hop)
        await self.store.flush()
        return m

    def sms_claim(self, seq: int) -> MessageRow | None:
        """The SMS side is about to submit held message *seq*.  If it still waits for an offline
        recipient it is returned, and not released until :meth:`sms_unclaim` or :meth:`sms_hop`:
        the recipient coming online wins only before this.  None: XMPP won (or it was recalled)."""
        m = self.open.get(seq)
        if m is None or m.state is not State.HELD or m.hold_reason != "recipient-offline":
            return None
        if self.online(m.recipient_bare) or seq in self.sms_inflight:
            return None
        self.sms_inflight.add(seq)
        return m

    def sms_unclaim(self, seq: int) -> None:
        """The attempt did not submit it: it waits again, and goes over XMPP if the recipient is here."""
        self.sms_inflight.discard(seq)
        m = self.open.get(seq)
        if m is not None:
            self.flush(m.recipient_bare)

    async def sms_hop(self, seq: int, event: Event, place: str, note: str = "") -> MessageRow | None:
        """Record an SMS hop of message *seq* — ``sms`` (submitted), ``sms-delivered``, or ``failed`` —
        and report it; durable when this returns.  None when the message is unknown or the hop
        is not legal in its state (a duplicate report, an outcome already recorded)."""
        self.sms_inflight.discard(seq)
        m = self.open.get(seq)
        if m is None:
            await self.store.flush()
            m = await self.store.message(seq)
            if m is None:
                return None
        now = time.time()
        try:
            hop = apply(m.state, event, now, place, note)
        except IllegalTransition:
            return None
        was_open = seq in self.open
        if was_open:
            # Like a recall: its refs stay, so that a late correction or retraction of it is
            # absorbed; nothing of it ever reaches the recipient's XMPP client.
            self._close(m)
        m.state, m.updated, m.release_at = hop.state, now, None
        self._record(m, hop)
        self.store.queue_update(m)
        if was_open:
            self.flush(m.recipient_bare)  # later messages may have waited behind it
        await self.store.flush()
        return m

    async def track_sms(
        self,
        sender_full: str,
        recipient: str,
        body: str,
        *,
        msg_id: str,
        origin_id: str = "",
        wants_reports: bool = False,
        extra: Iterable[ET.Element] = (),
        note: str = "",
    ) -> MessageRow:
        """A message to a phone number's JID (under :attr:`sms_domain`): tracked like any message
        (accepted, reported, traceable), then submitted as SMS by the SMS side, never released
        over XMPP.  Durable when this returns."""
        now = time.time()
        sender = _bare(sender_full)
        inner = ET.Element(f"{{{NS_CLIENT}}}message", {"from": sender_full, "to": recipient, "type": "chat"})
        if msg_id:
            inner.set("id", msg_id)
        ET.SubElement(inner, f"{{{NS_CLIENT}}}body").text = body
        if origin_id:
            ET.SubElement(inner, f"{{{NS_SID}}}origin-id", id=origin_id)
        for element in extra:
            inner.append(element)
        self.seq += 1
        row = MessageRow(
            self.seq, None, sender, sender_full.partition("/")[2], recipient, _bare(recipient), msg_id, origin_id,
            "message", body, ET.tostring(inner, encoding="unicode"), State.ACCEPTED, "", None, now, now,
            wants_reports or sender in self.report_defaults,
        )  # fmt: skip
        self.store.queue_message(row)
        self._record(row, accept(now, self.domain, note or f"from {sender_full}"))
        await self.store.flush()
        return row

    # -- messages Courier sends on a user's behalf (lists, drafts) ------------------

    async def originate(
        self,
        sender: str,
        recipient: str,
        body: str,
        *,
        msg_id: str | None = None,
        reports: bool = False,
        extra: Iterable[ET.Element] = (),
        note: str = "by Courier",
    ) -> MessageRow:
        """Send *body* from *sender* (bare JID) to *recipient* as a tracked message.

        It is held and released like a message the user sent (P1 and P2 apply);
        when released it passes the sender's archive and carbons.  Durable when
        this returns.
        """
        recipient_bare = _bare(recipient)
        msg_id = msg_id or uuid.uuid4().hex
        inner = ET.Element(f"{{{NS_CLIENT}}}message", {"from": sender, "to": recipient, "type": "chat", "id": msg_id})
        ET.SubElement(inner, f"{{{NS_CLIENT}}}body").text = body
        ET.SubElement(inner, f"{{{NS_SID}}}origin-id", id=msg_id)
        for element in extra:
            inner.append(element)
        if _domain(recipient_bare) != self.domain:
            where = "remote"
        else:
            where = "online" if self.online(recipient_bare) else "offline"
        now = time.time()
        self._track(
            None, where, now, inner, "message", f"{sender}/courier", sender, recipient,
            recipient_bare, reports or sender in self.report_defaults, now, note,
        )  # fmt: skip
        row = self.open.get(self.seq) or await self._committed(self.seq)
        await self.store.flush()
        return row

    async def _committed(self, seq: int) -> MessageRow:
        await self.store.flush()
        row = await self.store.message(seq)
        assert row is not None
        return row

    # -- the sender's own operations (courier-hops, commands) ---------------------

    def _held_by(self, sender: str, ref: str) -> MessageRow | None:
        for m in sorted(self.open.values(), key=lambda m: -m.seq):
            if m.sender == sender and ref in (m.msg_id, m.origin_id):
                return m
        return None

    async def _not_held(self, sender: str, ref: str) -> Exception:
        row = await self.store.find_sent(sender, ref)
        if row is None:
            return NotFound(ref)
        return TooLate(f"the message is already {row.state}")

    def pending(self, sender: str) -> list[MessageRow]:
        """*sender*'s messages still at the server, oldest first."""
        return sorted((m for m in self.open.values() if m.sender == sender), key=lambda m: m.seq)

    async def trace(self, sender: str, ref: str) -> tuple[MessageRow, list[Hop]]:
        """The newest message of *sender* with id or origin-id *ref*, and its hops."""
        await self.store.flush()
        row = await self.store.find_sent(sender, ref)
        if row is None:
            raise NotFound(ref)
        return row, await self.store.hops(row.seq)

    async def recall(self, sender: str, ref: str, note: str = "by command") -> MessageRow:
        """Withdraw a held message of *sender*; durable when this returns."""
        m = self._held_by(sender, ref)
        if m is None:
            raise await self._not_held(sender, ref)
        if m.seq in self.sms_inflight:
            raise TooLate("the message is being sent as SMS")
        self._recall_held(m, note, time.time())
        await self.store.flush()
        if m.hid is not None:  # her own message, archived and carbon-copied when she sent it
            self.transport.originate(sender_copy.recalled(m), m.sender)
        return m

    async def edit(self, sender: str, ref: str, body: str, note: str = "by command") -> MessageRow:
        """Replace the text of a held message of *sender*; durable when this returns."""
        if not body.strip():
            raise ValueError("the new text is empty")
        m = self._held_by(sender, ref)
        if m is None:
            raise await self._not_held(sender, ref)
        if m.seq in self.sms_inflight:
            raise TooLate("the message is being sent as SMS")
        if encrypted(m):
            raise Encrypted()
        self._edit_held(m, body, note, time.time())
        await self.store.flush()
        return m

    # -- time ------------------------------------------------------------------------

    def _schedule(self) -> None:
        """One timer, for the earliest release time."""
        while self._due and self._due[0][1] not in self.open:
            heapq.heappop(self._due)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._due:
            loop = asyncio.get_running_loop()
            delay = max(0.0, self._due[0][0] - time.time())
            self._timer = loop.call_at(loop.time() + delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        now = time.time()
        recipients = []
        while self._due and self._due[0][0] <= now:
            _, seq = heapq.heappop(self._due)
            m = self.open.get(seq)
            if m is not None:
                recipients.append(m.recipient_bare)
        for r in dict.fromkeys(recipients):
            self.flush(r)
        self._schedule()

    # -- helpers -----------------------------------------------------------------------

    def _forget_old_hids(self, now: float) -> None:
        while self.known_hids:
            hid, (t, _) = next(iter(self.known_hids.items()))
            if now - t < HID_MEMORY and len(self.known_hids) <= HID_MAX:
                break
            self.known_hids.popitem(last=False)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        spawn(coro, self._tasks, "A pipeline task")

    async def _answer_again(self, h: Handoff, seq: int) -> None:
        """A re-sent hand-off: answer as the first time, never store it twice."""
        if seq == -1:  # an acknowledgement the policy withheld
            self.transport.ack(h.hid)
            return
        if seq == 0:  # an acknowledgement, passed on at once the first time
            strip_ours(h.inner)
            self.transport.release(h.hid, h.inner, _bare(h.inner.get("from", "")))
            return
        await self.store.flush()
        if seq in self.open:
            self.transport.ack(h.hid)
            return
        m = await self.store.message_by_hid(h.hid)
        if m is not None and m.state in DELIVERED:
            # The release may have been lost with the connection; the server drops a duplicate.
            self.transport.release(h.hid, ET.fromstring(m.stanza), m.sender)
        else:
            self.transport.ack(h.hid)

    async def _note_on_delivered(
        self, sender: str, recipient_bare: str, ref: str, is_retract: bool, now: float
    ) -> None:
        """A correction or retraction of an already delivered message was passed on."""
        target = await self.store.find_message(sender, recipient_bare, ref)
        self.passed_on(target, Event.RETRACT if is_retract else Event.EDIT, "passed on", now)

    def passed_on(self, target: MessageRow | None, event: Event, note: str, now: float | None = None) -> bool:
        """Record on delivered message *target* that its correction (``Event.EDIT``) or
        retraction (``Event.RETRACT``) was passed on, and report it to its sender if they
        asked — the one passed-on path (hand-offs, lists' copies, …).  Durable after the
        next commit; False when there is nothing to record."""
        if target is None or target.state not in DELIVERED:
            return False
        now = time.time() if now is None else now
        try:
            hop = apply(target.state, event, now, self.domain, note)
        except IllegalTransition:
            return False
        target.state, target.updated = hop.state, now
        self._record(target, hop)
        self.store.queue_update(target)
        return True

    async def resend_unconfirmed(self) -> None:
        """Releases and originated messages the server never confirmed: send them again
        (same hand-off id / token: the server drops what it already routed).  At each connect."""
        await self.store.flush()
        rows = await self.store.outbox.unconfirmed()
        if rows:
            log.info("Re-sending %d releases and messages the server did not confirm", len(rows))
        for row in rows:
            send_stored(self.transport, row.kind, row.token, row.stanza, row.sender)

    async def drain(self) -> None:
        """Wait for background work and commit everything (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self.store.flush()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def send_stored(transport: Transport, kind: str, token: str, stanza: str, sender: str) -> None:
    """Send one outbox entry (a release, or an originated message) through *transport*."""
    if kind == "release":
        transport.release(token, ET.fromstring(stanza), sender)
    else:
        transport.originate(ET.fromstring(stanza), sender, token)


__all__ = [
    "Encrypted", "Handoff", "NotFound", "Pipeline", "Report", "SmsFallback", "TooLate", "Transport", "encrypted",
    "send_stored", "strip_ours",
]  # fmt: skip
