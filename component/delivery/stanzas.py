"""Reading (and composing) the stock XEPs' stanzas the pipeline acts on: message ids and
origin-ids (XEP-0359), corrections (XEP-0308), retractions (XEP-0424, and its older
XEP-0422 fastening form), receipts (XEP-0184) and chat markers (XEP-0333), bodies and
end-to-end encryption; and the removal of our own namespaces' elements a client forged.

Pure functions on ElementTree elements: nothing here knows of the store or of state."""

from __future__ import annotations

from collections.abc import Iterable
from xml.etree import ElementTree as ET

from ..namespaces import (
    NS_CLIENT,
    NS_CORRECT,
    NS_FASTEN,
    NS_MARKERS,
    NS_RECEIPTS,
    NS_RETRACT,
    NS_RETRACT0,
    NS_SID,
    OUR_TAG_PREFIX,
)
from ..store import MessageRow
from ..xep import e2ee
from .states import Event

#: Acknowledgements: (namespace, element) -> the event it means for the acknowledged message.
ACKNOWLEDGEMENTS: dict[tuple[str, str], Event] = {
    (NS_RECEIPTS, "received"): Event.RECEIVE,
    (NS_MARKERS, "received"): Event.RECEIVE,
    (NS_MARKERS, "displayed"): Event.READ,
    (NS_MARKERS, "acknowledged"): Event.READ,
}


def bare(jid: str) -> str:
    return jid.split("/", 1)[0]


def domain(jid: str) -> str:
    return bare(jid).rpartition("@")[2]


def refs(inner: ET.Element) -> tuple[str, str]:
    """(id, origin-id) of a message, "" for a missing one."""
    origin = inner.find(f"{{{NS_SID}}}origin-id")
    return inner.get("id", ""), (origin.get("id", "") if origin is not None else "")


def retract_ref(inner: ET.Element) -> str | None:
    """The id a XEP-0424 retraction (either form) withdraws, or None."""
    retract = inner.find(f"{{{NS_RETRACT}}}retract")
    if retract is not None:
        return retract.get("id") or None
    fasten = inner.find(f"{{{NS_FASTEN}}}apply-to")
    if fasten is not None and fasten.find(f"{{{NS_RETRACT0}}}retract") is not None:
        return fasten.get("id") or None
    return None


def replace_ref(inner: ET.Element) -> str | None:
    """The id a XEP-0308 correction replaces, or None."""
    replace = inner.find(f"{{{NS_CORRECT}}}replace")
    return (replace.get("id") or None) if replace is not None else None


def acknowledgement(inner: ET.Element) -> tuple[str, Event] | None:
    """A XEP-0184 receipt or XEP-0333 marker: (the acknowledged id, its event)."""
    for child in inner:
        ns, _, name = child.tag[1:].partition("}")
        event = ACKNOWLEDGEMENTS.get((ns, name))
        if event is not None and child.get("id"):
            return child.get("id", ""), event
    return None


def body(inner: ET.Element) -> str | None:
    element = inner.find(f"{{{NS_CLIENT}}}body")
    return element.text or "" if element is not None else None


def text(inner: ET.Element) -> str | None:
    """The text Courier may show or send on: None for an end-to-end encrypted message, whose
    ``<body/>`` is only a fallback sentence ("I sent you an OMEMO encrypted message…")."""
    return None if e2ee.is_encrypted(inner) else body(inner)


def encrypted(m: MessageRow) -> bool:
    """Whether tracked message *m* is end-to-end encrypted (Courier never reads its payload)."""
    return e2ee.stanza_encrypted(m.stanza)


def strip_ours(inner: ET.Element, keep: str = "") -> None:
    """Remove every element of our namespaces a client put on a message (forgeries), at any
    depth: one nested in a foreign element would otherwise reach the recipient as Courier's.
    *keep*: a tag kept at the top (a remote sender's ``<tracked/>``, delivery/inbound.py)."""
    for parent in list(inner.iter()):
        for child in [c for c in parent if isinstance(c.tag, str) and c.tag.startswith(OUR_TAG_PREFIX)]:
            if parent is inner and child.tag == keep:
                continue
            parent.remove(child)


def chat(
    sender: str, recipient: str, text: str, msg_id: str = "", origin_id: str = "", extra: Iterable[ET.Element] = ()
) -> ET.Element:
    """A jabber:client chat message Courier composes (ids only when given)."""
    inner = ET.Element(f"{{{NS_CLIENT}}}message", {"from": sender, "to": recipient, "type": "chat"})
    if msg_id:
        inner.set("id", msg_id)
    ET.SubElement(inner, f"{{{NS_CLIENT}}}body").text = text
    if origin_id:
        ET.SubElement(inner, f"{{{NS_SID}}}origin-id", id=origin_id)
    for element in extra:
        inner.append(element)
    return inner
