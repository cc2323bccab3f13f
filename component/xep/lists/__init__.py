"""courier-lists: broadcast lists, fan-out status and recall (xeps/courier-lists.xml)."""

from slixmpp.plugins.base import register_plugin

from .lists import ListsService, XEP_CourierLists, fill_fanout, fill_list
from .stanza import (
    COPY_STATES,
    COUNTS,
    NS,
    Add,
    Copy,
    CopyInfo,
    Create,
    Delete,
    Fanout,
    FanoutInfo,
    Fanouts,
    ListInfo,
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
    "CopyInfo",
    "Create",
    "Delete",
    "Fanout",
    "FanoutInfo",
    "Fanouts",
    "ListInfo",
    "ListItem",
    "Lists",
    "ListsService",
    "Member",
    "Recall",
    "Remove",
    "Rename",
    "Send",
    "XEP_CourierLists",
    "fill_fanout",
    "fill_list",
]
