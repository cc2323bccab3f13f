"""The courier-drafts plugin, for both sides (xeps/courier-drafts.xml).

Component side (``pconfig={"service": DraftsService, "domain": …}``): answers
``<store/>``, ``<update/>``, ``<delete/>``, ``<fire/>`` and ``<drafts/>`` for
the requesting user only; a draft of anybody else does not exist for them.
Client side: :meth:`XEP_CourierDrafts.store` and friends, and the events
``drafts_pending``, ``drafts_reminder`` and ``drafts_fired`` for Courier's
messages.
"""

from __future__ import annotations

from typing import Any, Protocol

from slixmpp import JID, Iq
from slixmpp.exceptions import XMPPError
from slixmpp.plugins import BasePlugin
from slixmpp.xmlstream import StanzaBase
from slixmpp.xmlstream.handler import Callback, CoroutineCallback
from slixmpp.xmlstream.matcher import StanzaPath

from . import stanza
from .stanza import ACTIONS, NS, TRIGGERS, DraftInfo, TriggerInfo

_HANDLERS = ("Drafts store", "Drafts update", "Drafts delete", "Drafts fire", "Drafts list")
_EVENTS = (("drafts_pending", "message/drafts_pending"), ("drafts_reminder", "message/drafts_reminder"),
           ("drafts_fired", "message/drafts_fired"))  # fmt: skip


class DraftsService(Protocol):
    """What the component side needs.  *requester* is a bare JID of the served domain.

    Failures are raised as ``XMPPError`` (item-not-found for a draft that is not
    the requester's, not-allowed when it was already sent, bad-request,
    not-acceptable or resource-constraint for limits).
    """

    async def store(self, requester: str, draft: DraftInfo) -> DraftInfo: ...
    async def update(self, requester: str, draft_id: str, changes: DraftInfo) -> DraftInfo: ...
    async def delete(self, requester: str, draft_id: str) -> None: ...
    async def fire(self, requester: str, draft_id: str) -> str: ...
    async def drafts(self, requester: str) -> list[DraftInfo]: ...


class XEP_CourierDrafts(BasePlugin):
    """courier-drafts: server-stored drafts with send triggers (xeps/courier-drafts.xml)."""

    name = "courier_drafts"
    description = "Courier drafts: server-stored drafts with send triggers, reminders and roaming"
    dependencies = {"xep_0030"}
    stanza = stanza

    def plugin_init(self) -> None:
        stanza.register()
        self.service: DraftsService | None = self.config.get("service")
        self.local_domain: str | None = self.config.get("domain")
        if self.xmpp.is_component:
            for name, path, handler in zip(
                _HANDLERS,
                (
                    "iq@type=set/drafts_store",
                    "iq@type=set/drafts_update",
                    "iq@type=set/drafts_delete",
                    "iq@type=set/drafts_fire",
                    "iq@type=get/drafts_list",
                ),  # fmt: skip
                (self._store, self._update, self._delete, self._fire, self._list),
                strict=True,
            ):
                self.xmpp.register_handler(CoroutineCallback(name, StanzaPath(path), handler))
        else:
            for event, path in _EVENTS:
                self.xmpp.register_handler(Callback(f"Drafts {event}", StanzaPath(path), self._emitter(event)))

    def plugin_end(self) -> None:
        for name in _HANDLERS:
            self.xmpp.remove_handler(name)
        for event, _ in _EVENTS:
            self.xmpp.remove_handler(f"Drafts {event}")
        self.xmpp.plugin["xep_0030"].del_feature(feature=NS)

    def session_bind(self, jid: Any) -> None:
        self.xmpp.plugin["xep_0030"].add_feature(NS)

    # -- component side -------------------------------------------------------

    def _requester(self, iq: StanzaBase) -> tuple[str, DraftsService]:
        sender: JID = iq["from"]
        if self.service is None:
            raise XMPPError("service-unavailable")
        if not sender.user or (self.local_domain and sender.domain != self.local_domain):
            raise XMPPError("forbidden", "only users of this server have drafts here", etype="auth")
        return str(sender.bare), self.service

    @staticmethod
    def _id(element: Any) -> str:
        draft_id = element["id"]
        if not draft_id:
            raise XMPPError("bad-request", "the id of one of your drafts is required")
        return str(draft_id)

    @staticmethod
    def _check(info: DraftInfo) -> None:
        if info.action and info.action not in ACTIONS:
            raise XMPPError("bad-request", "the action is send or remind")
        if info.trigger is not None and info.trigger.type not in TRIGGERS:
            raise XMPPError("bad-request", "the trigger is manual, at, target-online or message-from")

    def _answer(self, iq: StanzaBase, info: DraftInfo) -> None:
        reply = iq.reply(clear=True)
        reply["drafts_draft"].from_info(info)
        reply.send()

    async def _store(self, iq: StanzaBase) -> None:
        requester, service = self._requester(iq)
        info = iq["drafts_store"].to_info()
        if not info.to:
            raise XMPPError("bad-request", "a draft needs a target ('to')")
        if info.body is None or not info.body.strip():
            raise XMPPError("bad-request", "a draft needs a body")
        self._check(info)
        self._answer(iq, await service.store(requester, info))

    async def _update(self, iq: StanzaBase) -> None:
        requester, service = self._requester(iq)
        update = iq["drafts_update"]
        info = update.to_info()
        self._check(info)
        self._answer(iq, await service.update(requester, self._id(update), info))

    async def _delete(self, iq: StanzaBase) -> None:
        requester, service = self._requester(iq)
        await service.delete(requester, self._id(iq["drafts_delete"]))
        iq.reply(clear=True).send()

    async def _fire(self, iq: StanzaBase) -> None:
        requester, service = self._requester(iq)
        draft_id = self._id(iq["drafts_fire"])
        message_id = await service.fire(requester, draft_id)
        reply = iq.reply(clear=True)
        reply["drafts_fired"]["id"] = draft_id
        reply["drafts_fired"]["message_id"] = message_id
        reply.send()

    async def _list(self, iq: StanzaBase) -> None:
        requester, service = self._requester(iq)
        reply = iq.reply(clear=True)
        fill_drafts(reply["drafts_list"], await service.drafts(requester))
        reply.send()

    # -- client side ------------------------------------------------------------

    def _emitter(self, event: str) -> Any:
        def emit(msg: StanzaBase) -> None:
            self.xmpp.event(event, msg)

        return emit

    async def store(self, courier: JID | str, draft: DraftInfo, **iqkwargs: Any) -> DraftInfo:
        """Store a draft; Courier's confirmation (the stored draft, with its id)."""
        iq = self.xmpp.make_iq_set(ito=courier)
        iq["drafts_store"].from_info(draft)
        return (await iq.send(**iqkwargs))["drafts_draft"].to_info()  # type: ignore[no-any-return]

    async def update(self, courier: JID | str, draft_id: str, changes: DraftInfo, **iqkwargs: Any) -> DraftInfo:
        """Change a pending draft (fields left empty stay); the updated draft."""
        iq = self.xmpp.make_iq_set(ito=courier)
        changes.id = draft_id
        iq["drafts_update"].from_info(changes)
        return (await iq.send(**iqkwargs))["drafts_draft"].to_info()  # type: ignore[no-any-return]

    async def delete(self, courier: JID | str, draft_id: str, **iqkwargs: Any) -> Iq:
        iq = self.xmpp.make_iq_set(ito=courier)
        iq["drafts_delete"]["id"] = draft_id
        return await iq.send(**iqkwargs)

    async def fire(self, courier: JID | str, draft_id: str, **iqkwargs: Any) -> str:
        """Send a draft now; the id of the tracked message it became (traceable with courier-hops)."""
        iq = self.xmpp.make_iq_set(ito=courier)
        iq["drafts_fire"]["id"] = draft_id
        return str((await iq.send(**iqkwargs))["drafts_fired"]["message_id"])

    async def sync(self, courier: JID | str, **iqkwargs: Any) -> dict[str, list[DraftInfo]]:
        """Every pending draft of this account, as the (target → drafts) map."""
        iq = self.xmpp.make_iq_get(ito=courier)
        iq.enable("drafts_list")
        return (await iq.send(**iqkwargs))["drafts_list"].by_target()  # type: ignore[no-any-return]


def fill_drafts(element: stanza.Drafts, drafts: list[DraftInfo]) -> None:
    """Put *drafts* into a ``<drafts/>`` element, one ``<target/>`` per target, in order of appearance."""
    targets: dict[str, stanza.Target] = {}
    for info in drafts:
        target = targets.get(info.to)
        if target is None:
            target = targets[info.to] = stanza.Target()
            target["jid"] = info.to
            element.append(target)
        item = stanza.Draft()
        item.from_info(info)
        target.append(item)


__all__ = ["DraftInfo", "DraftsService", "TriggerInfo", "XEP_CourierDrafts", "fill_drafts"]
