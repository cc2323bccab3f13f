"""The route plugin's per-message path (component/xep/route/route.py): :meth:`take` — a
hand-off or a ``<routed/>`` from the server, as XML straight from the stream's parser, goes
to its callback; anything else is left to slixmpp's ordinary path (its handlers check and
answer it) — and the batched ``<ack/>``, written as text."""

from __future__ import annotations

from xml.etree import ElementTree as ET

import pytest
from slixmpp import ComponentXMPP

from component.xep import route

NS = route.NS
INNER = "<message xmlns='jabber:client' from='a@localhost/r' to='b@localhost' id='m1'><body>x</body></message>"


def handoff(sender: str = "localhost", hid: str = "h1", inner: str = INNER, extra: str = "") -> ET.Element:
    return ET.fromstring(
        f"<message xmlns='jabber:component:accept' from='{sender}' to='courier.localhost' id='{hid}'>"
        f"<handoff xmlns='{NS}' id='{hid}' recipient='online' copy='kept'><forwarded xmlns='urn:xmpp:forward:0'>"
        f"<delay xmlns='urn:xmpp:delay' stamp='2026-12-02T10:00:00Z'/>{inner}</forwarded></handoff>{extra}</message>"
    )


@pytest.fixture
def plugin() -> tuple[route.XEP_CourierRoute, list[object]]:
    got: list[object] = []
    xmpp = ComponentXMPP("courier.localhost", "secret", "localhost", 5347)
    xmpp.register_plugin(
        "courier_route",
        module=route,
        pconfig={"server": "localhost", "handoff": lambda *handoff: got.append(handoff), "routed": got.append},
    )
    return xmpp.plugin["courier_route"], got


def test_a_hand_off_from_the_server_goes_to_its_callback(plugin) -> None:
    p, got = plugin
    xml = handoff()
    assert p.take(xml)
    ((h, inner, stamp),) = got
    assert h is xml[0] and h.get("id") == "h1" and inner.get("id") == "m1" and inner.tag == "{jabber:client}message"
    assert stamp == "2026-12-02T10:00:00Z"


def test_routed_ids_go_to_their_callback(plugin) -> None:
    p, got = plugin
    xml = ET.fromstring(
        f"<message xmlns='jabber:component:accept' from='localhost' to='courier.localhost'>"
        f"<routed xmlns='{NS}'><item id='r1'/><item id='r2'/><other xmlns='urn:x' id='no'/></routed></message>"
    )
    assert p.take(xml) and got == [["r1", "r2"]]


@pytest.mark.parametrize(
    "xml",
    [
        handoff(sender="mallory@localhost/x"),  # forbidden, answered by the ordinary path
        handoff(sender="LOCALHOST"),  # the server's address not as it writes it: the JID is compared there
        handoff(hid=""),  # bad-request
        handoff(inner="<message xmlns='jabber:client' from='a@localhost'/>"),  # no recipient
        handoff(extra="<body xmlns='jabber:component:accept'>two children</body>"),
        ET.fromstring(f"<message xmlns='jabber:component:accept' from='localhost'><ack xmlns='{NS}'/></message>"),
        ET.fromstring("<iq xmlns='jabber:component:accept' from='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"),
        ET.fromstring(f"<presence xmlns='jabber:component:accept' from='localhost'><routed xmlns='{NS}'/></presence>"),
    ],
)
def test_anything_else_goes_the_ordinary_way(plugin, xml: ET.Element) -> None:
    p, got = plugin
    assert not p.take(xml) and got == []


def test_the_batched_answers_are_one_ack_written_as_text(plugin) -> None:
    p, _ = plugin
    sent: list[object] = []
    p.xmpp.send = sent.append
    p.xmpp.new_id = lambda: "s1"
    p.ack("h1")
    p.release_copy('h"2&')
    p.release_copy("h3", ET.Element("{https://courier.chat/ns/federation/0}tracked", token="t"))
    p.flush_answers()
    p.flush_answers()  # nothing more to send
    assert sent == [
        f'<message to="localhost" from="courier.localhost" id="s1"><ack xmlns="{NS}"><item id="h1" />'
        '<item release="true" id="h&quot;2&amp;" /><item release="true" id="h3">'
        '<tracked xmlns="https://courier.chat/ns/federation/0" token="t" /></item></ack></message>'
    ]
    ack = ET.fromstring(str(sent[0]))[0]
    assert [(i.get("id"), i.get("release")) for i in ack] == [("h1", None), ('h"2&', "true"), ("h3", "true")]


class Wire:
    """What reaches the socket (the stream's transport)."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)


def test_the_ack_goes_straight_to_the_socket_only_when_nothing_waits_in_the_send_queue(plugin) -> None:
    """Order on the stream is the order of the sends: with a release still in slixmpp's send
    queue the ack goes behind it; with the queue idle it is written at once."""
    p, _ = plugin
    wire = Wire()
    p.xmpp.transport = wire
    p.xmpp._session_started = True
    p.xmpp.new_id = lambda: "s1"
    p.xmpp.send("<message id='queued-release'/>")  # queued: not written yet
    p.ack("h1")
    p.flush_answers()
    assert wire.written == []
    queue = p.xmpp.waiting_queue
    assert [queue.get_nowait()[0] for _ in range(queue.qsize())] == [
        "<message id='queued-release'/>",
        f'<message to="localhost" from="courier.localhost" id="s1"><ack xmlns="{NS}"><item id="h1" /></ack></message>',
    ]
    for _ in range(2):
        queue.task_done()  # as slixmpp's send loop does once it wrote them
    p.ack("h2")
    p.flush_answers()
    ack = f'<message to="localhost" from="courier.localhost" id="s1"><ack xmlns="{NS}"><item id="h2" /></ack></message>'
    assert wire.written == [ack.encode()]
