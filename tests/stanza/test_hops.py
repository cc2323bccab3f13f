"""The courier-hops report forms (xeps/courier-hops.xml 0.5): ``<report/>`` and the lines of
``<reports/>``, written the way Courier sends them and read back the way clients read them."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from slixmpp import Message

from component.xep import hops
from component.xep.hops import stanza

AT = "2026-12-07T10:00:00.041Z"

#: Fields that need the encoding: white space and "%" in the note and an id, a lone "-".
ODD = {
    "id": "50% off", "origin_id": "", "to": "romeo@shakespeare.lit", "state": "cached", "at": AT,
    "place": "shakespeare.lit", "note": "recipient offline\n(twice)",
}  # fmt: skip
PLAIN = {
    "id": "-", "origin_id": "5f0c2a8e-9b1d-4e37-a6c4-2d8e1f7b3a90", "to": "romeo@shakespeare.lit",
    "state": "released", "at": AT, "place": "shakespeare.lit", "note": "",
}  # fmt: skip


def test_a_line_reads_back_as_the_report_it_was() -> None:
    for fields in (ODD, PLAIN):
        line = stanza.report_line(fields)
        assert "\n" not in line
        assert stanza.read_lines(line) == [fields]
    assert stanza.report_line(ODD) == (
        "50%25%20off - romeo@shakespeare.lit cached 2026-12-07T10:00:00.041Z shakespeare.lit "
        "recipient%20offline%0A(twice)"
    )
    assert stanza.report_line(PLAIN).split(" ")[0] == "%2D"  # a real "-", not "no value"


def test_lines_of_the_wrong_length_are_skipped() -> None:
    good = stanza.report_line(PLAIN)
    assert stanza.read_lines(f"too few fields\n{good}\na b c d e f g h\n") == [PLAIN]


def test_courier_sends_one_report_as_an_element_and_the_client_reads_both_forms() -> None:
    one = ET.fromstring(f"<message xmlns='jabber:client'>{hops.report_xml(ODD)}</message>")
    assert [child.tag for child in one] == [stanza.REPORT_TAG]
    assert one[0].get("origin-id") is None  # an empty field is no attribute
    assert stanza.read_reports(one) == [ODD]

    text = "\n".join(map(stanza.report_line, [ODD, PLAIN]))
    both = ET.fromstring(
        "<message xmlns='jabber:client' from='courier.shakespeare.lit' type='headline'>"
        f"{hops.report_xml(PLAIN)}<reports xmlns='{stanza.NS}'>{text}</reports></message>"
    )
    assert stanza.read_reports(both) == [PLAIN, ODD, PLAIN]  # in document order


def test_split_reports_gives_one_message_per_report_with_the_rest_kept() -> None:
    stanza.register()
    msg = Message()
    msg["from"], msg["type"] = "courier.shakespeare.lit", "headline"
    msg["hops_reports"]["reports"] = [ODD, PLAIN]
    ET.SubElement(msg.xml, "{urn:xmpp:hints}no-store")  # (any other child stays in every part)
    parts = hops.split_reports(msg)
    got = [{k: p["hops_report"][k] for k in stanza.LINE_FIELDS} for p in parts]
    assert got == [ODD, PLAIN]
    for part in parts:
        assert part["from"] == "courier.shakespeare.lit"
        assert part.xml.find(stanza.REPORTS_TAG) is None
        assert part.xml.find("{urn:xmpp:hints}no-store") is not None
    single = Message()
    single["hops_report"]["id"], single["hops_report"]["state"] = "m1", "sent"
    assert hops.split_reports(single) == [single]
