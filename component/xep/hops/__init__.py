"""courier-hops: hop reports, message trace, pending/recall/edit (xeps/courier-hops.xml)."""

from slixmpp.plugins.base import register_plugin

from .hops import HopsService, XEP_CourierHops, split_reports
from .stanza import NS, REPORT_STATES, Edit, Hop, Pending, PendingMessage, Recall, Report, Request, Trace

register_plugin(XEP_CourierHops)

__all__ = [
    "NS",
    "REPORT_STATES",
    "Edit",
    "Hop",
    "HopsService",
    "Pending",
    "PendingMessage",
    "Recall",
    "Report",
    "Request",
    "Trace",
    "XEP_CourierHops",
    "split_reports",
]
