"""Federation, the recipient's side: Courier B reports to, and answers, the sender's Courier.

A message from another server carries ``<tracked by id/>`` when the sender's Courier (*by*,
``courier.<sender's domain>``) tracks it.  The element is kept in the stored stanza (the
pipeline keeps it for remote senders; courier-route's ``<deliver/>`` drops it before the
recipient sees the message).  Then:

- every hop of the message here (cached, released, edited, recalled, …; not received / read,
  which reach the sender's server as the recipient's own receipts and markers) is reported to
  *by* — and nothing after ``cached`` when the recipient's receipt policy for the sender is
  ``refuse``.  A report is durable: kept in the outbox (kind ``hop``) in the commit of its
  hop, sent after it, re-sent every :attr:`Inbound.resend_after` seconds and at each connect
  until *by* acknowledges it (``<acked/>``), for at most :data:`REPORT_TTL`;
- *by*, and only *by*, may recall or edit the message while it is held here; the answer is
  certain: done (with the hop recorded, whose report follows too: *by* de-duplicates it), or
  too late with the state it left in;
- *by* stored it before releasing it, so released at once to an online recipient it is
  relayed: released before the commit here (:meth:`Inbound.tracked_by_peer`, the pipeline's
  ``tracked_by_peer``; courier-federation 0.5, "Relaying").

A remote sender whose server runs no Courier and who asked for reports gets courier-hops
reports from us directly (same privacy rule).  Rules: xeps/courier-federation.xml.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from typing import Any
from xml.etree import ElementTree as ET

from slixmpp.exceptions import XMPPError

from ..namespaces import TRACKED_TAG
from ..store import MessageRow
from ..tasks import spawn
from ..util import stamp
from ..xep.federation import HOP_STATES, TooLateError, XEP_CourierFederation, speaks_for
from .pipeline import Handoff, Pipeline, encrypted
from .ports import Report
from .states import Hop, State, hop_word

log = logging.getLogger(__name__)

#: What a recipient who refuses receipts still lets the sender's server know.
UNDER_REFUSE = ("cached", "held")
#: A hop report no peer acknowledged is given up after this long (seconds): a day.
REPORT_TTL = 86400.0
#: The periodic re-send of unacknowledged hop reports, on the scheduler.
TIMER = ("federation", "hop-resend")
#: How many recent hand-offs' <tracked/> are remembered (the rest is read from the stanza).
TRACKED_MEMORY = 10000
_MARK = TRACKED_TAG.partition("}")[0][1:]  # the namespace: a cheap test before parsing


def _domain(jid: str) -> str:
    return jid.partition("/")[0].rpartition("@")[2]


def tracked(m: MessageRow, element: ET.Element | None = None) -> tuple[str, str] | None:
    """(by, id) of *m*'s ``<tracked/>`` (*element*: that element, already found) if its sender's
    server may track it, else None."""
    if element is None:
        if _MARK not in m.stanza:
            return None
        element = ET.fromstring(m.stanza).find(TRACKED_TAG)
        if element is None:
            return None
    by, token = element.get("by", ""), element.get("id", "")
    return (by, token) if token and speaks_for(by, m.sender) else None


class Inbound:
    """Hop observer (reports out) and the plugin's FederationService (recall / edit in)."""

    def __init__(self, pipeline: Pipeline, xmpp: Any, resend_after: float = 15.0) -> None:
        self.pipeline = pipeline
        self.xmpp = xmpp
        self.resend_after = resend_after
        self._periodic = False  # the periodic re-send is on the scheduler
        self._tasks: set[asyncio.Task[Any]] = set()
        #: hid -> the <tracked/> of a remote sender's recent hand-off (None: it had none), so
        #: that its hops need not parse the stored stanza again; older ones are parsed
        self._tracked: OrderedDict[str, ET.Element | None] = OrderedDict()

    def handoff(self, h: Handoff) -> None:
        """A hand-off on its way to the pipeline: a remote sender's <tracked/> noted."""
        if _domain(h.inner.get("from", "")) != self.pipeline.domain:
            self._tracked[h.hid] = h.inner.find(TRACKED_TAG)
            if len(self._tracked) > TRACKED_MEMORY:
                self._tracked.popitem(last=False)

    def tracked_by_peer(self, h: Handoff) -> bool:
        """Whether hand-off *h* (noted by :meth:`handoff`) is of a message its sender's Courier
        stored and tracks: a ``<tracked/>`` from a JID that may speak for the sender's server."""
        element = self._tracked.get(h.hid)
        if element is None or not element.get("id"):
            return False
        return speaks_for(element.get("by", ""), h.inner.get("from", ""))

    def _tracking(self, m: MessageRow) -> tuple[str, str] | None:
        if m.hid is not None and m.hid in self._tracked:
            element = self._tracked[m.hid]
            return None if element is None else tracked(m, element)
        return tracked(m)

    @property
    def plugin(self) -> XEP_CourierFederation:
        return self.xmpp.plugin["courier_federation"]  # type: ignore[no-any-return]

    def hop(self, m: MessageRow, hop: Hop) -> None:
        """Pipeline hop recorder (before the commit), for messages of remote senders."""
        if _domain(m.sender) == self.pipeline.domain or hop.label == State.ACCEPTED.value:
            return
        word = hop_word(hop.label, hop.note)
        if self.pipeline.policy_of(m.recipient_bare, m.sender) == "refuse" and word not in UNDER_REFUSE:
            return  # privacy: nothing about the recipient after "cached"
        tracking = self._tracking(m)
        if tracking is not None:
            if word in HOP_STATES:
                self._report(m, tracking[0], tracking[1], word, hop)
        elif m.reports:
            self.pipeline.store.after_commit(lambda: self._report_directly(m, hop, word))

    # -- durable reports to the tracker ---------------------------------------------

    def _report(self, m: MessageRow, peer: str, token: str, word: str, hop: Hop) -> None:
        """Keep the report in the outbox in this hop's commit; send it after the commit."""
        report = uuid.uuid4().hex
        line = self.plugin.hop_line(report, token, word, stamp(hop.at), hop.note)
        store = self.pipeline.store
        store.queue_outbox(report, "hop", peer, line, time.time())
        # the release of a message that waited here (its recipient just came online): the receipt
        # may follow at once, so its report does not wait for the coalescing (xeps: hop reports)
        at_once = word == "released" and hop.at - m.created > 0.05
        store.after_commit(lambda: self.plugin.send_hops(peer, [line], at_once))

    def on_acked(self, acked: tuple[str, list[str]]) -> None:
        """``<acked/>`` from a peer: those reports are done (a report id is unguessable, so only
        the peer it went to can name it)."""
        peer, reports = acked
        if reports and not peer.partition("/")[0].count("@"):
            self.pipeline.store.queue_routed(reports)

    async def resend(self, before: float | None = None) -> int:
        """Send again every report queued before *before* (default: now) and not acknowledged;
        give up those older than :data:`REPORT_TTL`.  At each connect, and every
        :attr:`resend_after` seconds."""
        store = self.pipeline.store
        now = time.time()
        rows = await store.outbox.unacknowledged_hops(now if before is None else before)
        expired = [row.token for row in rows if row.at < now - REPORT_TTL]
        if expired:
            log.warning("Gave up %d hop reports no peer acknowledged in %d s", len(expired), REPORT_TTL)
            store.queue_routed(expired)
        for row in rows:
            if row.at >= now - REPORT_TTL:
                self.plugin.send_hops(row.sender, [row.stanza])
        return len(rows) - len(expired)

    def start(self) -> None:
        """At each connect: re-send what is unacknowledged now; the first time, also start the
        periodic re-send (the scheduler's job :data:`TIMER`, every :attr:`resend_after` s)."""
        if not self._periodic:
            self._periodic = True
            self.pipeline.scheduler.every(
                self.resend_after, TIMER, self._resend_round, first=time.time() + self.resend_after
            )
        spawn(self.resend(), self._tasks, "Hop report re-send")

    async def _resend_round(self) -> None:
        """One periodic round: what a peer has not acknowledged after :attr:`resend_after` s
        (a failure is logged, "federation hop-resend failed", and tried again with back-off)."""
        if self.xmpp.is_connected():
            count = await self.resend(time.time() - self.resend_after)
            if count:
                log.info("Re-sent %d hop reports not acknowledged by their peer", count)

    def stop(self) -> None:
        self.pipeline.scheduler.cancel(TIMER)
        self._periodic = False

    def _report_directly(self, m: MessageRow, hop: Hop, word: str) -> None:
        report = Report(m.sender, m.msg_id, m.origin_id, m.recipient_bare, word, hop.at, hop.place, hop.note)
        self.xmpp.hops.queue_report(m.sender, report.fields())

    async def change(
        self, peer: str, token: str, sender: str, to: str, ref: str, body: str | None
    ) -> tuple[str, str] | None:
        """A recall (*body* None) or edit from the sender's Courier *peer* (speaks_for checked):
        (state, at) of the hop recorded; None when it was recalled already."""
        p = self.pipeline
        if _domain(to) != p.domain or _domain(sender) == p.domain:
            raise XMPPError("item-not-found", "no such message tracked by you")
        await p.store.flush()
        seq = p.by_ref.get((sender, to, ref))
        held = p.open.get(seq) if seq is not None else None
        m = held or await p.store.find_message(sender, to, ref)
        if m is None or tracked(m) != (peer, token):
            raise XMPPError("item-not-found", "no such message tracked by you")
        if held is None:
            if m.state is State.RECALLED and body is None:
                return None  # recalled already (by the sender's own retraction): done
            raise TooLateError(hop_word(m.state.value, m.hold_reason))
        if held.seq in p.sms_inflight:
            raise TooLateError("sms")
        now = time.time()
        if body is None:
            p._recall_held(held, f"by {peer}", now)
        else:
            if encrypted(held):
                raise XMPPError("not-acceptable", "the message is end-to-end encrypted")
            p._edit_held(held, body, f"by {peer}", now)
        log.info("Message %d (%s -> %s) %s at the request of %s", held.seq, sender, to,
                 "recalled" if body is None else "edited", peer)  # fmt: skip
        await p.store.flush()
        return ("recalled" if body is None else "edited"), stamp(now)
