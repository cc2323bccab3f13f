"""The clients of :mod:`bench.receipts`: a message asking for a XEP-0184 receipt, a client that
answers and records receipts and courier-hops reports, and the exactly-once check of the reports."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import Any
from xml.sax.saxutils import quoteattr

from component.xep.hops.stanza import read_reports

from .common import BenchClient, BenchFailure, body_for

NS_RECEIPTS = "urn:xmpp:receipts"
NS_HOPS = "https://courier.chat/ns/hops/0"
NS_RECEIPTS_POLICY = "https://courier.chat/ns/receipts/0"
MESSAGE = "{jabber:client}message"
BODY = "{jabber:client}body"
RECEIVED = f"{{{NS_RECEIPTS}}}received"
#: The hop reports a stock client's message gets when its receipt comes back.
REPORT_STATES = ("sent", "released", "received")


def request_stanza(to: str, tag: str, i: int, no_reports: bool) -> str:
    """A chat message asking for a receipt, as a stock client writes it (id, origin-id)."""
    mid = f"{tag}-{i}"
    decline = f"<no-request xmlns='{NS_RECEIPTS_POLICY}'/>" if no_reports else ""
    return (
        f"<message to='{to}' type='chat' id='{mid}'><body>{body_for(tag, i)}</body>"
        f"<request xmlns='{NS_RECEIPTS}'/><origin-id xmlns='urn:xmpp:sid:0' id='{mid}'/>{decline}</message>"
    )


class ReceiptClient(BenchClient):
    """:class:`BenchClient` that answers benchmark messages with receipts and records receipts and reports.

    All three are handled in the incoming filter (timestamped, then dropped
    before slixmpp's handler matching), so that the clients cost little CPU.
    """

    def __init__(self, jid: str, password: str, port: int) -> None:
        super().__init__(jid, password, port)
        self.answer = False  # the recipient: answer every benchmark message with a receipt
        self.receipts: list[tuple[float, str]] = []  # (perf_counter, acknowledged id)
        self.hop_reports: list[tuple[float, str, str]] = []  # (perf_counter, id, state)
        self.report_messages = 0  # the messages that carried them
        self.receipt_target = 0
        self.receipts_reached = asyncio.Event()

    def _bench_filter(self, stanza: Any) -> Any:
        xml = stanza.xml
        if xml.tag == MESSAGE and xml.get("type") != "error":
            received = xml.find(RECEIVED)
            if received is not None and xml.find(BODY) is None:
                self.receipts.append((time.perf_counter(), received.get("id", "")))
                if len(self.receipts) >= self.receipt_target:
                    self.receipts_reached.set()
                return None
            reports = read_reports(xml)  # one or more (a commit's hops together: <reports/>, courier-hops 0.5)
            if reports:
                now = time.perf_counter()
                self.hop_reports.extend((now, r["id"], r["state"]) for r in reports)
                self.report_messages += 1
                return None
        before = len(self.arrivals)
        result = super()._bench_filter(stanza)
        if self.answer and len(self.arrivals) > before:
            # what a client does: a receipt to whoever sent it, as soon as it is parsed
            self.send_raw(
                f"<message to={quoteattr(xml.get('from', ''))} type='chat' id={quoteattr('r-' + xml.get('id', ''))}>"
                f"<received xmlns='{NS_RECEIPTS}' id={quoteattr(xml.get('id', ''))}/></message>"
            )
        return result

    def expect_receipts(self, target: int) -> None:
        self.receipt_target = target
        self.receipts_reached.clear()
        if len(self.receipts) >= target:
            self.receipts_reached.set()

    def reset(self) -> None:
        self.arrivals.clear()
        self.receipts.clear()
        self.hop_reports.clear()
        self.report_messages = 0


async def wait_count(count: Callable[[], int], target: int, stall: float, what: str) -> None:
    """Until ``count() >= target``; BenchFailure if it makes no progress for *stall* seconds."""
    last, progress = -1, time.monotonic()
    while (now := count()) < target:
        if now != last:
            last, progress = now, time.monotonic()
        elif time.monotonic() - progress > stall:
            raise BenchFailure(f"{what}: stalled at {now} of {target} for {stall:.0f}s")
        await asyncio.sleep(0.01)


def check_reports(sender: ReceiptClient, ids: list[str], wanted: bool, what: str) -> None:
    """Each hop report exactly once per message if *wanted*, none otherwise."""
    got = Counter((mid, state) for _, mid, state in sender.hop_reports)
    expected = Counter((mid, state) for mid in ids for state in REPORT_STATES) if wanted else Counter()
    if got != expected:
        missing = list((expected - got).elements())
        extra = list((got - expected).elements())
        raise BenchFailure(
            f"{what}: {sum(got.values())} hop reports for {sum(expected.values())} expected; "
            f"{len(missing)} missing (first: {missing[:3]}), {len(extra)} extra or duplicated (first: {extra[:3]})"
        )
