"""Broadcast lists (P4): one message to many, as individual messages from the owner.

- :mod:`.names`: list names ↔ list JIDs (``<name>+<owner-node>@courier.<domain>``), expiry;
- :mod:`.service`: :class:`ListService`, the rules (lists, limits, fan-out, status, recall).

The SQL is in :mod:`component.store.lists`, the protocol (courier-lists,
``xeps/courier-lists.xml``) in :mod:`component.xep.lists`, the commands in
:mod:`component.commands.lists`.
"""

from .service import AGGREGATE, FanoutStatus, Limits, ListError, ListService, aggregate_state, copy_state

__all__ = ["AGGREGATE", "FanoutStatus", "Limits", "ListError", "ListService", "aggregate_state", "copy_state"]
