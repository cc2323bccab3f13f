"""courier-receipts: receipt policies and processing receipts, P2 (xeps/courier-receipts.xml)."""

from slixmpp.plugins.base import register_plugin

from .receipts import ReceiptsService, XEP_CourierReceipts
from .stanza import NS, POLICIES, Confirm, NoRequest, Notice, Policies, Policy

register_plugin(XEP_CourierReceipts)

__all__ = [
    "NS",
    "POLICIES",
    "Confirm",
    "NoRequest",
    "Notice",
    "Policies",
    "Policy",
    "ReceiptsService",
    "XEP_CourierReceipts",
]
