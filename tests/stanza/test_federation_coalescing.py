"""courier-federation 0.3: hop reports and acknowledgements to a peer are coalesced on the
scheduler (at most one message of reports every 50 ms, one <acked/> every 250 ms), waiting
reports are flushed on demand; 0.4: the compact form (<hops/>, <acks/>) toward a peer that
reads it, <hop/> / <acked/> otherwise.  What is sent validates against the schema."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from datetime import UTC, datetime
from typing import Any
from unittest.mock import MagicMock
from xml.etree import ElementTree as ET

from slixmpp import Message
from slixmpp.plugins import xep_0082

from component.util import parse_stamp, stamp
from component.xep.federation import XEP_CourierFederation, read_reports
from component.xep.federation.federation import ACKS_EVERY, HOPS_EVERY
from tests.schemas import sent_violations

PEER = "courier.a.example"


class Timers:
    """The scheduler's at/cancel, run by hand."""

    def __init__(self) -> None:
        self.due: dict[Hashable, tuple[float, Callable[[], object]]] = {}

    def at(self, when: float, key: Hashable, job: Callable[[], object], *, earliest: bool = False) -> None:
        if earliest and key in self.due and self.due[key][0] <= when:
            return
        self.due[key] = (when, job)

    def cancel(self, key: Hashable) -> bool:
        return self.due.pop(key, None) is not None

    def run(self, key: Hashable) -> float:
        when, job = self.due.pop(key)
        job()
        return when


def plugin(reads_lists: bool = False) -> tuple[XEP_CourierFederation, Timers, list[str]]:
    xmpp: Any = MagicMock()
    xmpp.boundjid.bare = "courier.b.example"
    sent: list[str] = []
    xmpp.send.side_effect = sent.append
    timers = Timers()
    p = XEP_CourierFederation(xmpp, {"scheduler": timers, "reads_lists": lambda _peer: reads_lists})
    p.plugin_init()
    return p, timers, sent


def test_reports_of_a_spell_go_together_then_at_most_every_50_ms() -> None:
    p, timers, sent = plugin()
    hop = p.hop_line("r1", "t1", "released", stamp(time.time()), "recipient online")
    p.send_hops(PEER, [hop])
    p.send_hops(PEER, [p.hop_line("r2", "t2", "released", stamp(time.time()))])
    assert len(timers.due) == 1 and not sent
    assert timers.run(("federation", "hops", PEER)) <= time.time()  # the first: at once
    assert len(sent) == 1 and 'report="r1"' in sent[0] and 'report="r2"' in sent[0]
    p.send_hops(PEER, [p.hop_xml("t3", "cached", stamp(time.time()), "", "r3")])  # (a 0.3 outbox's)
    when, _ = timers.due[("federation", "hops", PEER)]
    assert when > time.time() and when - time.time() <= HOPS_EVERY  # waits for the 50 ms
    p.flush_hops()  # e.g. before a receipt: at once, and the timer is gone
    assert len(sent) == 2 and 'report="r3"' in sent[1] and not timers.due
    assert sent_violations(sent) == []


def test_acknowledgements_are_coalesced_and_written_as_text() -> None:
    p, timers, sent = plugin()
    p.ack(PEER, "r1")
    p.ack(PEER, "r2")
    timers.run(("federation", "acked", PEER))
    assert sent == [
        """<message from="courier.b.example" to="courier.a.example" type='headline'>"""
        """<acked xmlns='https://courier.chat/ns/federation/0'><item id="r1"/><item id="r2"/></acked>"""
        "<no-store xmlns='urn:xmpp:hints'/></message>"
    ]
    p.ack(PEER, "r3")
    when, _ = timers.due[("federation", "acked", PEER)]
    assert time.time() < when <= time.time() + ACKS_EVERY
    assert sent_violations(sent) == []


def test_the_compact_form_toward_a_peer_that_reads_it() -> None:
    p, timers, sent = plugin(reads_lists=True)
    at = stamp(time.time())
    odd = "a note with 100% <odd>\nthings"
    lines = [p.hop_line("r1", "t1", "released", at, "recipient online"), p.hop_line("r 2", "t2", "cached", at, odd)]
    p.send_hops(PEER, lines)
    timers.run(("federation", "hops", PEER))
    assert len(sent) == 1 and "<hops xmlns='https://courier.chat/ns/federation/0'>" in sent[0]
    assert "<hop " not in sent[0]
    assert sent_violations(sent) == []
    reports = read_reports(ET.fromstring(sent[0]))
    assert reports == [("t1", "released", at, "recipient online", "r1"), ("t2", "cached", at, odd, "r 2")]
    # the reports came in <hops/>: acknowledged with <acks/>
    msg = Message(None, ET.fromstring(sent[0].replace("<message ", "<message xmlns='jabber:client' ")))
    p._hop(msg)
    p.ack(str(msg["from"]), "r1")
    p.ack(str(msg["from"]), "r 2")
    timers.run(("federation", "acked", "courier.b.example"))
    assert sent[-1].count("<acks ") == 1 and sent_violations(sent[-1:]) == []
    got = Message(None, ET.fromstring(sent[-1].replace("<message ", "<message xmlns='jabber:client' ")))
    assert got["fed_acks"]["ids"] == ["r1", "r 2"]


def test_elements_toward_a_peer_that_does_not_read_the_compact_form() -> None:
    p, timers, sent = plugin(reads_lists=False)
    at = stamp(time.time())
    p.send_hops(PEER, [p.hop_line("r1", "t1", "released", at, "recipient online")])
    timers.run(("federation", "hops", PEER))
    assert "<hops" not in sent[0] and read_reports(ET.fromstring(sent[0])) == [
        ("t1", "released", at, "recipient online", "r1")
    ]
    assert sent_violations(sent) == []


def test_parse_stamp_quick_path_agrees_with_the_library() -> None:
    for text in ("2026-11-23T10:00:00.123Z", "2026-11-23T10:00:00Z", " 2026-11-23T10:00:00.5Z "):
        assert parse_stamp(text) == xep_0082.parse(text.strip()).timestamp()
    assert parse_stamp("2026-11-23T10:00:00.123Z") == datetime(2026, 11, 23, 10, 0, 0, 123000, tzinfo=UTC).timestamp()
    assert parse_stamp("2026-11-23T10:00:00") == parse_stamp("2026-11-23T10:00:00Z")
