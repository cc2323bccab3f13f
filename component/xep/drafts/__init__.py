"""courier-drafts: server-stored drafts with send triggers, reminders and roaming (xeps/courier-drafts.xml)."""

from slixmpp.plugins.base import register_plugin

from .drafts import DraftsService, XEP_CourierDrafts, fill_drafts
from .stanza import (
    ACTIONS,
    NS,
    TRIGGERS,
    Delete,
    Draft,
    DraftInfo,
    Drafts,
    Fire,
    Fired,
    Pending,
    Reminder,
    Store,
    Target,
    Trigger,
    TriggerInfo,
    Update,
)

register_plugin(XEP_CourierDrafts)

__all__ = [
    "ACTIONS",
    "NS",
    "TRIGGERS",
    "Delete",
    "Draft",
    "DraftInfo",
    "Drafts",
    "DraftsService",
    "Fire",
    "Fired",
    "Pending",
    "Reminder",
    "Store",
    "Target",
    "Trigger",
    "TriggerInfo",
    "Update",
    "XEP_CourierDrafts",
    "fill_drafts",
]
