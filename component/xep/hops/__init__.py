"""courier-hops: hop reports, message trace, pending/recall/edit (xeps/courier-hops.xml)."""

from slixmpp.plugins.base import register_plugin

from .hops import HopsService, XEP_CourierHops, report_xml, split_reports
from .stanza import (
    NS,
    NS_LISTS,
    REPORT_STATES,
    Edit,
    Hop,
    Pending,
    PendingMessage,
    Recall,
    Report,
    Reports,
    Request,
    Trace,
    read_reports,
    report_line,
)

register_plugin(XEP_CourierHops)

__all__ = [
    "NS",
    "NS_LISTS",
    "REPORT_STATES",
    "Edit",
    "Hop",
    "HopsService",
    "Pending",
    "PendingMessage",
    "Recall",
    "Report",
    "Reports",
    "Request",
    "Trace",
    "XEP_CourierHops",
    "read_reports",
    "report_line",
    "report_xml",
    "split_reports",
]
