"""courier-federation: Courier to Courier across servers (xeps/courier-federation.xml)."""

from slixmpp.plugins.base import register_plugin

from .federation import FederationService, TooLateError, XEP_CourierFederation, peer_of
from .stanza import HOP_STATES, NS, NS_LISTS, Edit, HopReport, Recall, TooLate, Tracked, read_reports, speaks_for

register_plugin(XEP_CourierFederation)

__all__ = [
    "HOP_STATES", "NS", "NS_LISTS", "Edit", "FederationService", "HopReport", "Recall", "TooLate", "TooLateError",
    "Tracked", "XEP_CourierFederation", "peer_of", "read_reports", "speaks_for",
]  # fmt: skip
