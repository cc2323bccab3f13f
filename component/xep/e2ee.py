"""End-to-end encrypted messages: which stanzas are, and which children carry their payload.

Pure functions on ``jabber:client`` message elements; nothing here decrypts or
reads a ciphertext.  A message is end-to-end encrypted when it carries an
element of a known encryption namespace (OMEMO 0.3 as Conversations sends it,
OMEMO 2, OpenPGP for XMPP, legacy OpenPGP) or a XEP-0380 ``<encryption/>``
hint naming any namespace — a future scheme is treated as opaque just the same.

Its *payload-bearing part* is everything that says what the message says:
the encrypted element(s), every element of a namespace the EME hint names,
the EME hint itself, the fallback ``<body/>`` ("I sent you an OMEMO encrypted
message…"), XHTML-IM, and the XEP-0428 ``<fallback/>`` markers that describe
the body.  A correction of a held message swaps that whole part
(:func:`swap_payload`) and keeps the rest — the original id and origin-id,
receipt requests, hints and whatever Courier owns.
"""

from __future__ import annotations

import copy
from xml.etree import ElementTree as ET

from ..namespaces import (
    NS_CLIENT,
    NS_EME,
    NS_FALLBACK,
    NS_OMEMO2,
    NS_OMEMO_LEGACY,
    NS_OPENPGP,
    NS_PGP_LEGACY,
    NS_XHTML_IM,
)

#: Encryption namespaces known without an EME hint, and what to call them.
KNOWN: dict[str, str] = {
    NS_OMEMO_LEGACY: "OMEMO",
    NS_OMEMO2: "OMEMO 2",
    NS_OPENPGP: "OpenPGP",
    NS_PGP_LEGACY: "legacy OpenPGP",
}

#: What the sender of an encrypted message hears when Courier is asked to change its text.
EDIT_REFUSED = "this message is end-to-end encrypted; correct it from your client"


def _ns(element: ET.Element) -> str:
    tag = element.tag
    return tag[1:].partition("}")[0] if tag.startswith("{") else ""


def _eme(inner: ET.Element) -> list[ET.Element]:
    return inner.findall(f"{{{NS_EME}}}encryption")


def encryption_namespaces(inner: ET.Element) -> set[str]:
    """The encryption namespaces *inner* uses: those of its known encrypted elements and every
    namespace an EME hint names (even one Courier has never heard of)."""
    found = {_ns(child) for child in inner if _ns(child) in KNOWN}
    found.update(e.get("namespace", "") for e in _eme(inner) if e.get("namespace"))
    return found


def is_encrypted(inner: ET.Element) -> bool:
    """Whether *inner* is an end-to-end encrypted message."""
    return bool(encryption_namespaces(inner)) or bool(_eme(inner))


def scheme(inner: ET.Element) -> str | None:
    """A human name for *inner*'s encryption (``OMEMO``, ``OpenPGP``…), None if it is not encrypted."""
    for e in _eme(inner):
        if e.get("name"):
            return e.get("name")
    for child in inner:
        if _ns(child) in KNOWN:
            return KNOWN[_ns(child)]
    namespaces = sorted(encryption_namespaces(inner))
    if namespaces:
        return namespaces[0]
    return "unknown" if _eme(inner) else None


def payload(inner: ET.Element) -> list[ET.Element]:
    """The children of *inner* that say what the message says (its payload-bearing part),
    in document order: body, XHTML-IM, XEP-0428 fallback markers, EME hints and every element
    of an encryption namespace."""
    encrypted = encryption_namespaces(inner)
    part = {NS_XHTML_IM, NS_FALLBACK, NS_EME} | encrypted
    return [c for c in inner if c.tag == f"{{{NS_CLIENT}}}body" or _ns(c) in part]


def swap_payload(original: ET.Element, correction: ET.Element) -> None:
    """Put *correction*'s payload-bearing part in place of *original*'s (in place).

    Everything else of *original* stays: its attributes (the id the recipient will see), its
    origin-id, receipt requests, hints.  The correction's own references (its id, its
    ``<replace/>``) are not part of its payload and are not copied."""
    old = payload(original)
    children = list(original)
    at = children.index(old[0]) if old else len(children)
    for element in old:
        original.remove(element)
    for offset, element in enumerate(payload(correction)):
        fresh = copy.deepcopy(element)
        fresh.tail = None
        original.insert(at + offset, fresh)


def stanza_encrypted(stanza: str) -> bool:
    """:func:`is_encrypted` of a stored stanza (its serialized XML)."""
    try:
        return is_encrypted(ET.fromstring(stanza))
    except ET.ParseError:
        return False


__all__ = [
    "EDIT_REFUSED",
    "KNOWN",
    "NS_EME",
    "NS_FALLBACK",
    "NS_OMEMO2",
    "NS_OMEMO_LEGACY",
    "NS_OPENPGP",
    "encryption_namespaces",
    "is_encrypted",
    "payload",
    "scheme",
    "stanza_encrypted",
    "swap_payload",
]
