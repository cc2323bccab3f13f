"""The courier-lists plugin, for both sides (xeps/courier-lists.xml); protocol only.

Component side (``pconfig={"service": ListsService, "domain": …}``): answers the
list-management and fan-out IQs for the requesting user only (anybody else's list
does not exist for them).  What a list does besides — fanning out a message sent to
a list's JID or with XEP-0033 addresses, a list as a contact (roster, presence), pacing
— is the XMPP glue's (:mod:`component.lists.xmpp`), which uses :func:`fill_fanout`
for the ``<fanout/>`` it puts on its notices.

Client side: :meth:`XEP_CourierLists.create` and friends, and the
``lists_fanout`` event for every ``<fanout/>`` Courier sends.

Events: ``lists_fanout`` (client side, the message carrying ``<fanout/>``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from slixmpp import JID, Iq
from slixmpp.exceptions import XMPPError
from slixmpp.plugins import BasePlugin
from slixmpp.xmlstream import StanzaBase
from slixmpp.xmlstream.handler import Callback, CoroutineCallback
from slixmpp.xmlstream.matcher import StanzaPath

from ... import util
from ...util import stamp
from . import stanza
from .stanza import COUNTS, NS, FanoutInfo, ListInfo

_IQ_HANDLERS = (
    ("Lists lists", "iq@type=get/lists_lists", "_lists"),
    ("Lists list", "iq@type=get/lists_list", "_list"),
    ("Lists create", "iq@type=set/lists_create", "_create"),
    ("Lists rename", "iq@type=set/lists_rename", "_rename"),
    ("Lists add", "iq@type=set/lists_add", "_add"),
    ("Lists remove", "iq@type=set/lists_remove", "_remove"),
    ("Lists delete", "iq@type=set/lists_delete", "_delete"),
    ("Lists send", "iq@type=set/lists_send", "_send"),
    ("Lists fanout", "iq@type=get/lists_fanout", "_fanout"),
    ("Lists fanouts", "iq@type=get/lists_fanouts", "_fanouts"),
    ("Lists recall", "iq@type=set/lists_recall", "_recall"),
)


class ListsService(Protocol):
    """What the component side needs.  *requester* is a bare JID of the served domain.

    Failures are raised as ``XMPPError`` (item-not-found for a list or fan-out that is not
    the requester's, conflict for a name taken, bad-request / jid-malformed /
    not-acceptable for bad input and limits, resource-constraint for the rate limit).
    """

    async def lists(self, requester: str) -> list[ListInfo]: ...
    async def get(self, requester: str, name: str) -> ListInfo: ...
    async def create(
        self, requester: str, name: str, members: list[str], expires: float | None, temporary: bool
    ) -> ListInfo: ...
    async def rename(self, requester: str, name: str, new_name: str) -> ListInfo: ...
    async def add(self, requester: str, name: str, members: list[str]) -> ListInfo: ...
    async def remove(self, requester: str, name: str, members: list[str]) -> ListInfo: ...
    async def delete(self, requester: str, name: str) -> None: ...
    async def send(self, requester: str, name: str, body: str, only: str) -> FanoutInfo: ...
    async def fanout(self, requester: str, fanout_id: str) -> FanoutInfo: ...
    async def fanouts(self, requester: str) -> list[FanoutInfo]: ...
    async def recall(self, requester: str, fanout_id: str) -> FanoutInfo: ...


def parse_stamp(text: str) -> float:
    """A XEP-0082 date-time → POSIX time; ``bad-request`` if it is not one."""
    try:
        return util.parse_stamp(text)
    except ValueError:
        raise XMPPError("bad-request", f"“{text}” is not a XEP-0082 date-time", etype="modify") from None


def fill_list(item: Any, info: ListInfo, members: bool) -> None:
    """A ``<list/>`` element (its members too when *members*)."""
    item["name"], item["jid"] = info.name, info.jid
    item["count"], item["created"] = str(len(info.members)), stamp(info.created)
    if info.expires is not None:
        item["expires"] = stamp(info.expires)
    if members:
        item.add_jids(info.members)


def fill_fanout(element: Any, info: FanoutInfo, copies: bool) -> None:
    """A ``<fanout/>`` element: the aggregate (and every ``<copy/>`` when *copies*)."""
    element["id"], element["at"] = info.id, stamp(info.created)
    if info.list_name:
        element["list"] = info.list_name
    element["total"] = str(info.total)
    for state, n in info.counts.items():
        element[state] = str(n)
    if copies:
        for c in info.copies:
            item = stanza.Copy()
            item["to"], item["id"], item["state"] = c.to, c.id, c.state
            element.append(item)


class XEP_CourierLists(BasePlugin):
    """courier-lists: broadcast lists and fan-outs (xeps/courier-lists.xml)."""

    name = "courier_lists"
    description = "Courier lists: broadcast lists, fan-out status and recall"
    dependencies = {"xep_0030"}
    stanza = stanza

    def plugin_init(self) -> None:
        stanza.register()
        self.service: ListsService | None = self.config.get("service")
        self.local_domain: str | None = self.config.get("domain")
        if self.xmpp.is_component:
            for name, path, method in _IQ_HANDLERS:
                self.xmpp.register_handler(CoroutineCallback(name, StanzaPath(path), self._iq(getattr(self, method))))
        else:
            self.xmpp.register_handler(Callback("Lists fanout", StanzaPath("message/lists_fanout"), self._notice_in))

    def plugin_end(self) -> None:
        for name, _, _ in _IQ_HANDLERS:
            self.xmpp.remove_handler(name)
        self.xmpp.remove_handler("Lists fanout")
        self.xmpp.plugin["xep_0030"].del_feature(feature=NS)

    def session_bind(self, jid: Any) -> None:
        self.xmpp.plugin["xep_0030"].add_feature(NS)

    # -- component side ------------------------------------------------------------------

    def requester(self, stanza_: StanzaBase) -> str:
        """The bare JID of a local user who sent *stanza_*; ``forbidden`` for anybody else."""
        sender: JID = stanza_["from"]
        if self.service is None:
            raise XMPPError("service-unavailable")
        if not sender.user or (self.local_domain and sender.domain != self.local_domain):
            raise XMPPError("forbidden", "only users of this server have broadcast lists here", etype="auth")
        return str(sender.bare)

    @property
    def _svc(self) -> ListsService:
        assert self.service is not None
        return self.service

    def _iq(self, handler: Callable[[Any, str], Awaitable[Iq]]) -> Callable[[StanzaBase], Awaitable[None]]:
        """Requester check, then send the reply."""

        async def run(iq: StanzaBase) -> None:
            requester = self.requester(iq)
            (await handler(iq, requester)).send()

        return run

    @staticmethod
    def _list_reply(iq: Iq, info: ListInfo) -> Iq:
        reply = iq.reply(clear=True)
        fill_list(reply["lists_list"], info, members=True)
        return reply

    @staticmethod
    def _fanout_reply(iq: Iq, info: FanoutInfo) -> Iq:
        reply = iq.reply(clear=True)
        fill_fanout(reply["lists_fanout"], info, copies=True)
        return reply

    @staticmethod
    def _name(element: Any) -> str:
        name = element["name"]
        if not name or not str(name).strip():
            raise XMPPError("bad-request", "the name of one of your lists is required", etype="modify")
        return str(name)

    @staticmethod
    def _fanout_id(element: Any) -> str:
        fanout_id = element["id"]
        if not fanout_id:
            raise XMPPError("bad-request", "the id of one of your fan-outs is required", etype="modify")
        return str(fanout_id)

    async def _lists(self, iq: Iq, requester: str) -> Iq:
        reply = iq.reply(clear=True)
        lists = reply["lists_lists"]
        for info in await self._svc.lists(requester):
            item = stanza.ListItem()
            fill_list(item, info, members=False)
            lists.append(item)
        return reply

    async def _list(self, iq: Iq, requester: str) -> Iq:
        return self._list_reply(iq, await self._svc.get(requester, self._name(iq["lists_list"])))

    async def _create(self, iq: Iq, requester: str) -> Iq:
        create = iq["lists_create"]
        expires = parse_stamp(create["expires"]) if create["expires"] else None
        info = await self._svc.create(requester, self._name(create), create.jids(), expires, create["temporary"])
        return self._list_reply(iq, info)

    async def _rename(self, iq: Iq, requester: str) -> Iq:
        rename = iq["lists_rename"]
        if not rename["new_name"]:
            raise XMPPError("bad-request", "new-name is required", etype="modify")
        return self._list_reply(iq, await self._svc.rename(requester, self._name(rename), rename["new_name"]))

    async def _add(self, iq: Iq, requester: str) -> Iq:
        add = iq["lists_add"]
        return self._list_reply(iq, await self._svc.add(requester, self._name(add), add.jids()))

    async def _remove(self, iq: Iq, requester: str) -> Iq:
        remove = iq["lists_remove"]
        return self._list_reply(iq, await self._svc.remove(requester, self._name(remove), remove.jids()))

    async def _delete(self, iq: Iq, requester: str) -> Iq:
        await self._svc.delete(requester, self._name(iq["lists_delete"]))
        return iq.reply(clear=True)

    async def _send(self, iq: Iq, requester: str) -> Iq:
        send = iq["lists_send"]
        info = await self._svc.send(requester, self._name(send), send["body"], send["only"] or "")
        return self._fanout_reply(iq, info)

    async def _fanout(self, iq: Iq, requester: str) -> Iq:
        return self._fanout_reply(iq, await self._svc.fanout(requester, self._fanout_id(iq["lists_fanout"])))

    async def _fanouts(self, iq: Iq, requester: str) -> Iq:
        reply = iq.reply(clear=True)
        fanouts = reply["lists_fanouts"]
        for info in await self._svc.fanouts(requester):
            element = stanza.Fanout()
            fill_fanout(element, info, copies=False)
            fanouts.append(element)
        return reply

    async def _recall(self, iq: Iq, requester: str) -> Iq:
        return self._fanout_reply(iq, await self._svc.recall(requester, self._fanout_id(iq["lists_recall"])))

    # -- client side ------------------------------------------------------------------------

    def _notice_in(self, msg: StanzaBase) -> None:
        self.xmpp.event("lists_fanout", msg)

    async def _set(self, courier: JID | str, plugin: str, fill: Callable[[Any], None], **iqkwargs: Any) -> Iq:
        iq = self.xmpp.make_iq_set(ito=courier)
        fill(iq[plugin])
        return await iq.send(**iqkwargs)

    async def get_lists(self, courier: JID | str, **iqkwargs: Any) -> Iq:
        iq = self.xmpp.make_iq_get(ito=courier)
        iq.enable("lists_lists")
        return await iq.send(**iqkwargs)

    async def get_list(self, courier: JID | str, name: str, **iqkwargs: Any) -> Iq:
        iq = self.xmpp.make_iq_get(ito=courier)
        iq["lists_list"]["name"] = name
        return await iq.send(**iqkwargs)

    async def create(
        self,
        courier: JID | str,
        name: str,
        members: list[str],
        *,
        temporary: bool = False,
        expires: float | None = None,
        **iqkwargs: Any,
    ) -> Iq:
        def fill(create: Any) -> None:
            create["name"] = name
            create["temporary"] = temporary
            if expires is not None:
                create["expires"] = stamp(expires)
            create.add_jids(members)

        return await self._set(courier, "lists_create", fill, **iqkwargs)

    async def rename(self, courier: JID | str, name: str, new_name: str, **iqkwargs: Any) -> Iq:
        def fill(rename: Any) -> None:
            rename["name"], rename["new_name"] = name, new_name

        return await self._set(courier, "lists_rename", fill, **iqkwargs)

    async def add(self, courier: JID | str, name: str, members: list[str], **iqkwargs: Any) -> Iq:
        def fill(add: Any) -> None:
            add["name"] = name
            add.add_jids(members)

        return await self._set(courier, "lists_add", fill, **iqkwargs)

    async def remove(self, courier: JID | str, name: str, members: list[str], **iqkwargs: Any) -> Iq:
        def fill(remove: Any) -> None:
            remove["name"] = name
            remove.add_jids(members)

        return await self._set(courier, "lists_remove", fill, **iqkwargs)

    async def delete(self, courier: JID | str, name: str, **iqkwargs: Any) -> Iq:
        def fill(delete: Any) -> None:
            delete["name"] = name

        return await self._set(courier, "lists_delete", fill, **iqkwargs)

    async def send(self, courier: JID | str, name: str, body: str, *, only: str = "", **iqkwargs: Any) -> Iq:
        def fill(send: Any) -> None:
            send["name"], send["body"] = name, body
            if only:
                send["only"] = only

        return await self._set(courier, "lists_send", fill, **iqkwargs)

    async def get_fanout(self, courier: JID | str, fanout_id: str, **iqkwargs: Any) -> Iq:
        iq = self.xmpp.make_iq_get(ito=courier)
        iq["lists_fanout"]["id"] = fanout_id
        return await iq.send(**iqkwargs)

    async def get_fanouts(self, courier: JID | str, **iqkwargs: Any) -> Iq:
        iq = self.xmpp.make_iq_get(ito=courier)
        iq.enable("lists_fanouts")
        return await iq.send(**iqkwargs)

    async def recall(self, courier: JID | str, fanout_id: str, **iqkwargs: Any) -> Iq:
        def fill(recall: Any) -> None:
            recall["id"] = fanout_id

        return await self._set(courier, "lists_recall", fill, **iqkwargs)


__all__ = ["COUNTS", "ListsService", "XEP_CourierLists", "fill_fanout", "fill_list", "parse_stamp", "stamp"]
