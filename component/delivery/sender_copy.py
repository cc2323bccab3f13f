"""What the sender's own archive and other devices are told when she recalls a held message
by command (bot, ad-hoc, IQ, ``courier client``).

Her message was archived (MAM) and copied to her other devices (carbons) when she sent it,
before Courier held it; a recall by command happens on the server, so without this her
archive would keep it as an ordinary sent message and a new device would show it as if it had
been delivered. Courier originates a standard XEP-0424 retraction from her, marked
``<sender-only/>`` (courier-route): the server archives and carbon-copies it like her own
outgoing message and does not deliver it — the recipient never had the message.
"""

from __future__ import annotations

import uuid
from xml.etree import ElementTree as ET

from ..namespaces import NS_CLIENT, NS_FALLBACK, NS_HINTS, NS_RETRACT, NS_ROUTE
from ..store import MessageRow

FALLBACK_TEXT = "This person attempted to retract a previous message, but it's unsupported by your client."


def recalled(m: MessageRow) -> ET.Element:
    """The retraction of *m* for its sender's archive and devices only (XEP-0424: in a 1:1 chat
    the retraction names the message's origin-id, else its id)."""
    inner = ET.Element(
        f"{{{NS_CLIENT}}}message",
        {"from": m.sender, "to": m.recipient_bare, "type": "chat", "id": uuid.uuid4().hex},
    )
    ET.SubElement(inner, f"{{{NS_RETRACT}}}retract", id=m.origin_id or m.msg_id)
    ET.SubElement(inner, f"{{{NS_FALLBACK}}}fallback", {"for": NS_RETRACT})
    ET.SubElement(inner, f"{{{NS_CLIENT}}}body").text = FALLBACK_TEXT
    ET.SubElement(inner, f"{{{NS_HINTS}}}store")
    ET.SubElement(inner, f"{{{NS_ROUTE}}}sender-only")
    return inner


__all__ = ["recalled"]
