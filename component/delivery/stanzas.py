"""Reading (and composing) the stock XEPs' stanzas the pipeline acts on: message ids and
origin-ids (XEP-0359), corrections (XEP-0308), retractions (XEP-0424, and its older
XEP-0422 fastening form), receipts (XEP-0184) and chat markers (XEP-0333), bodies and
end-to-end encryption; the removal of our own namespaces' elements a client forged; and the
stored form of a stanza (:func:`serialize`).

Pure functions on ElementTree elements: nothing here knows of the store or of state."""

from __future__ import annotations

from collections.abc import Callable, Iterable
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


#: ElementTree's own escaping and well-known prefixes (``xml``, ``html``…): :func:`serialize`
#: writes exactly what ``ET.tostring`` writes.
_escape_cdata: Callable[[str], str] = ET._escape_cdata  # type: ignore[attr-defined]
_escape_attrib: Callable[[str], str] = ET._escape_attrib  # type: ignore[attr-defined]
_WELL_KNOWN: dict[str, str] = ET._namespace_map  # type: ignore[attr-defined]


def serialize(element: ET.Element) -> str:
    """The stored form of a stanza: exactly ``ET.tostring(element, encoding="unicode")`` (the
    same ``ns0:`` prefixes in the same order, all declared on the top element, the same
    escaping), in one pass.  ``ET.tostring`` walks the tree twice and writes through a file
    object: about half as fast, and ~16 % of the event loop's time per hand-off
    (bench/courier_alone.py).  Anything but elements and strings (comments, ``QName``s) is
    left to ``ET.tostring``."""
    out: list[str] = []
    prefixes: dict[str, str] = {}  # namespace -> prefix, numbered in the order first used (as ET)
    try:
        _write(element, out, {}, prefixes)
    except Exception:
        return ET.tostring(element, encoding="unicode")  # what it makes of the unusual (or its error)
    if prefixes:  # after the top element's name, before its attributes, sorted by prefix (as ET)
        out[0] += "".join(f' xmlns:{p}="{_escape_attrib(uri)}"' for uri, p in sorted(prefixes.items(), key=_prefix))
    return "".join(out)


def _write(elem: ET.Element, out: list[str], names: dict[str, str], prefixes: dict[str, str]) -> None:
    tag = elem.tag
    if type(tag) is not str:
        raise TypeError(tag)
    tag = names.get(tag) or _name(tag, names, prefixes)
    append = out.append
    append("<" + tag)
    for key, value in elem.items():
        if type(value) is not str:
            raise TypeError(value)
        if key[:1] == "{":  # most attributes have no namespace: written as they are
            key = names.get(key) or _name(key, names, prefixes)
        append(f' {key}="{_escape_attrib(value)}"')
    text = elem.text
    if text or len(elem):
        append(">")
        if text:
            append(_escape_cdata(text))
        for child in elem:
            _write(child, out, names, prefixes)
        append(f"</{tag}>")
    else:
        append(" />")
    if elem.tail:
        append(_escape_cdata(elem.tail))


def _name(qname: str, names: dict[str, str], prefixes: dict[str, str]) -> str:
    """``{uri}local`` as written (``ns0:local``), remembered in *names*."""
    if qname[:1] != "{":
        names[qname] = qname
        return qname
    uri, local = qname[1:].rsplit("}", 1)
    prefix = prefixes.get(uri)
    if prefix is None:
        prefix = _WELL_KNOWN.get(uri) or f"ns{len(prefixes)}"
        if prefix != "xml":
            prefixes[uri] = prefix
    names[qname] = written = f"{prefix}:{local}"
    return written


def _prefix(item: tuple[str, str]) -> str:
    return item[1]
