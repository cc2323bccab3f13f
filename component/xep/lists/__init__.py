"""courier-lists: broadcast lists, fan-out status and recall (xeps/courier-lists.xml)."""

from slixmpp.plugins.base import register_plugin

from .lists import XEP_CourierLists
from .stanza import (
    COPY_STATES,
    COUNTS,
    NS,
    Add,
    Copy,
    Create,
    Delete,
    Fanout,
    Fanouts,
    ListItem,
    Lists,
    Member,
    Recall,
    Remove,
    Rename,
    Send,
)

register_plugin(XEP_CourierLists)

__all__ = [
    "COPY_STATES",
    "COUNTS",
    "NS",
    "Add",
    "Copy",
    "Create",
    "Delete",
    "Fanout",
    "Fanouts",
    "ListItem",
    "Lists",
    "Member",
    "Recall",
    "Remove",
    "Rename",
    "Send",
    "XEP_CourierLists",
]
