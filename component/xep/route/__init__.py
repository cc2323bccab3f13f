"""courier-route: the acknowledged hand-off between Prosody and Courier (xeps/courier-route.xml)."""

from slixmpp.plugins.base import register_plugin

from .route import XEP_CourierRoute
from .stanza import (
    NS,
    Ack,
    AckItem,
    Bounce,
    Fallback,
    FallbackItem,
    Handoff,
    Originate,
    Release,
    Routed,
    read_handoff,
)

register_plugin(XEP_CourierRoute)

__all__ = [
    "NS", "Ack", "AckItem", "Bounce", "Fallback", "FallbackItem", "Handoff", "Originate", "Release", "Routed",
    "XEP_CourierRoute", "read_handoff",
]  # fmt: skip
