"""The courier-lists plugin, for both sides.

Component side (``pconfig={"service": ListService, "domain": …}``): answers the
list-management and fan-out IQs for the requesting user only; fans out a chat
message that a user sends to one of their list JIDs (``<name>+<owner>@courier…``),
and a message to Courier's JID that carries XEP-0033 ``<addresses/>``; after a
fan-out it tells the sending device (a message from the list's JID, or
Courier's, with ``<fanout/>``) and answers a XEP-0184 receipt request.  A
XEP-0424 retraction or XEP-0308 correction sent to a list JID recalls or
corrects the whole fan-out of the message it names.

Client side: :meth:`XEP_CourierLists.create` and friends, and the
``lists_fanout`` event for every ``<fanout/>`` Courier sends.

Events: ``lists_fanout`` (client side, the message carrying ``<fanout/>``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from xml.etree.ElementTree import Element

from slixmpp import JID, Iq, Message
from slixmpp.exceptions import XMPPError
from slixmpp.plugins import BasePlugin
from slixmpp.xmlstream import StanzaBase
from slixmpp.xmlstream.handler import Callback, CoroutineCallback
from slixmpp.xmlstream.matcher import StanzaPath
from slixmpp.xmlstream.matcher.base import MatcherBase

from ... import util
from ...lists import ListError, copy_state
from ...lists.names import is_list_node
from ...namespaces import NS_ADDRESS, NS_CORRECT, NS_FASTEN, NS_RECEIPTS, NS_RETRACT, NS_RETRACT0, NS_SID
from ...util import stamp
from .. import e2ee
from . import stanza
from .stanza import COUNTS, NS

if TYPE_CHECKING:
    from ...lists import FanoutStatus, ListService
    from ...store.lists import FanoutRow, ListRow

log = logging.getLogger(__name__)

#: XEP-0033 address types that receive a copy (every copy is individual: to and cc act as bcc).
DELIVERED_TYPES = ("to", "cc", "bcc")

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


def parse_stamp(text: str) -> float:
    """A XEP-0082 date-time → POSIX time; ``bad-request`` if it is not one."""
    try:
        return util.parse_stamp(text)
    except ValueError:
        raise XMPPError("bad-request", f"“{text}” is not a XEP-0082 date-time", etype="modify") from None


class ForLists(MatcherBase):
    """Messages for the lists service: to a list JID (``<name>+<owner>@`` Courier's domain), or
    to Courier's own JID with XEP-0033 addresses.  A string test, cheap enough to run on
    every message the component receives."""

    def __init__(self, component: str) -> None:
        super().__init__(component)
        self.component = component
        self.suffix = "@" + component

    def match(self, xml: StanzaBase) -> bool:
        if xml.xml.tag.rpartition("}")[2] != "message":
            return False
        to = xml.xml.get("to", "")
        bare = to.partition("/")[0]
        if bare.endswith(self.suffix):
            return is_list_node(bare[: -len(self.suffix)])  # not a phone number's JID (SMS)
        return bare == self.component and xml.xml.find(f"{{{NS_ADDRESS}}}addresses") is not None


#: Why an end-to-end encrypted message to a list JID (or with XEP-0033 addresses) is refused.
ENCRYPTED_REFUSED = (
    "this message is end-to-end encrypted: a broadcast list sends a copy of its text to every member, "
    "and Courier cannot encrypt it for each of them; send it to each member from your client"
)


def _ref(msg: Message) -> tuple[str, str]:
    origin = msg.xml.find(f"{{{NS_SID}}}origin-id")
    return msg["id"] or "", (origin.get("id", "") if origin is not None else "")


def _retract_ref(msg: Message) -> str | None:
    retract = msg.xml.find(f"{{{NS_RETRACT}}}retract")
    if retract is not None:
        return retract.get("id") or None
    fasten = msg.xml.find(f"{{{NS_FASTEN}}}apply-to")
    if fasten is not None and fasten.find(f"{{{NS_RETRACT0}}}retract") is not None:
        return fasten.get("id") or None
    return None


def _replace_ref(msg: Message) -> str | None:
    replace = msg.xml.find(f"{{{NS_CORRECT}}}replace")
    return (replace.get("id") or None) if replace is not None else None


class XEP_CourierLists(BasePlugin):
    """courier-lists: broadcast lists and fan-outs (xeps/courier-lists.xml)."""

    name = "courier_lists"
    description = "Courier lists: broadcast lists, fan-out status and recall; XEP-0033 multicast"
    dependencies = {"xep_0030", "xep_0033"}
    stanza = stanza

    def plugin_init(self) -> None:
        stanza.register()
        self.service: ListService | None = self.config.get("service")
        self.local_domain: str | None = self.config.get("domain")
        if self.xmpp.is_component:
            for name, path, method in _IQ_HANDLERS:
                self.xmpp.register_handler(CoroutineCallback(name, StanzaPath(path), self._iq(getattr(self, method))))
            component = self.xmpp.boundjid.bare
            self.xmpp.register_handler(CoroutineCallback("Lists message", ForLists(component), self._message))
            self.xmpp.add_event_handler("presence_subscribe", self._subscribe)
            if self.service is not None:
                self.service.pace = self.settle
                self.service.on_gone = self._gone
        else:
            self.xmpp.register_handler(Callback("Lists fanout", StanzaPath("message/lists_fanout"), self._notice_in))

    def plugin_end(self) -> None:
        self.xmpp.del_event_handler("presence_subscribe", self._subscribe)
        for name, _, _ in _IQ_HANDLERS:
            self.xmpp.remove_handler(name)
        self.xmpp.remove_handler("Lists message")
        self.xmpp.remove_handler("Lists fanout")
        self.xmpp.plugin["xep_0030"].del_feature(feature=NS)

    def session_bind(self, jid: Any) -> None:
        self.xmpp.plugin["xep_0030"].add_feature(NS)
        if self.xmpp.is_component and self.service is not None:
            for owner, list_jid in self.service.list_jids():
                self._allow(list_jid, owner)

    # -- component side: a list as a contact ------------------------------------------------

    def _allow(self, list_jid: str, owner: str) -> None:
        """The owner may see the list's presence: slixmpp's roster then answers the owner's server's
        probes with an available presence (and never with ``unsubscribed``) and approves a
        subscription request, without asking the owner for one back."""
        node = self.xmpp.roster[list_jid]
        node.auto_subscribe = False
        item = node[owner]
        item["whitelisted"] = True
        item["from"] = True

    def _gone(self, owner: str, list_jid: str) -> None:
        """A list JID that no longer exists: withdraw its presence and the owner's subscription."""
        item = self.xmpp.roster[list_jid][owner]
        if item["from"]:
            item.unauthorize()
        item["whitelisted"] = False

    async def _subscribe(self, pres: Any) -> None:
        """A subscription request to a list JID: approved for its owner, refused for anybody else."""
        to, sender = pres["to"], pres["from"]
        if self.service is None or to.domain != self.xmpp.boundjid.bare or not to.user:
            return
        item = self.xmpp.roster[to.bare][sender.bare]
        try:
            await self.service.by_jid(str(sender.bare), to)
        except ListError:
            item.unauthorize()
            return
        pending = item["pending_in"]  # set by slixmpp when it did not answer (a list created since start-up)
        self._allow(str(to.bare), str(sender.bare))
        if pending:
            item.authorize()  # subscribed, then the list's presence
        else:
            item.send_last_presence()  # slixmpp sent subscribed (an allowed owner): the presence too

    # -- component side: common ------------------------------------------------------

    def _requester(self, stanza_: StanzaBase) -> str:
        sender: JID = stanza_["from"]
        if self.service is None:
            raise XMPPError("service-unavailable")
        if not sender.user or (self.local_domain and sender.domain != self.local_domain):
            raise XMPPError("forbidden", "only users of this server have broadcast lists here", etype="auth")
        return str(sender.bare)

    @property
    def _svc(self) -> ListService:
        assert self.service is not None
        return self.service

    def _iq(self, handler: Callable[[Any, str], Awaitable[Iq]]) -> Callable[[StanzaBase], Awaitable[None]]:
        """Requester check, ListError → XMPPError, send the reply."""

        async def run(iq: StanzaBase) -> None:
            requester = self._requester(iq)
            try:
                reply = await handler(iq, requester)
            except ListError as exc:
                raise XMPPError(exc.condition, exc.text, etype=exc.etype) from None
            reply.send()

        return run

    def _fill_list(self, item: Any, row: ListRow, members: bool) -> None:
        item["name"], item["jid"] = row.name, self._svc.jid_of(row)
        item["count"], item["created"] = str(len(row.members)), stamp(row.created)
        if row.expires is not None:
            item["expires"] = stamp(row.expires)
        if members:
            item.add_jids(row.members)

    def _fill_fanout(self, element: Any, status: FanoutStatus | None, fanout: FanoutRow, copies: bool) -> None:
        element["id"], element["at"] = fanout.id, stamp(fanout.created)
        if fanout.list_name:
            element["list"] = fanout.list_name
        if status is None:
            return
        element["total"] = str(status.total)
        for state, n in status.counts.items():
            element[state] = str(n)
        if copies:
            for c in status.copies:
                item = stanza.Copy()
                item["to"], item["id"], item["state"] = c.member, c.msg_id, copy_state(c)
                element.append(item)

    def _list_reply(self, iq: Iq, row: ListRow) -> Iq:
        reply = iq.reply(clear=True)
        self._fill_list(reply["lists_list"], row, members=True)
        return reply

    def _fanout_reply(self, iq: Iq, status: FanoutStatus) -> Iq:
        reply = iq.reply(clear=True)
        self._fill_fanout(reply["lists_fanout"], status, status.fanout, copies=True)
        return reply

    @staticmethod
    def _name(element: Any) -> str:
        name = element["name"]
        if not name or not str(name).strip():
            raise XMPPError("bad-request", "the name of one of your lists is required", etype="modify")
        return str(name)

    # -- component side: IQs -------------------------------------------------------------

    async def _lists(self, iq: Iq, requester: str) -> Iq:
        reply = iq.reply(clear=True)
        lists = reply["lists_lists"]
        for row in await self._svc.lists(requester):
            item = stanza.ListItem()
            self._fill_list(item, row, members=False)
            lists.append(item)
        return reply

    async def _list(self, iq: Iq, requester: str) -> Iq:
        return self._list_reply(iq, await self._svc.get(requester, self._name(iq["lists_list"])))

    async def _create(self, iq: Iq, requester: str) -> Iq:
        create = iq["lists_create"]
        expires = parse_stamp(create["expires"]) if create["expires"] else None
        row = await self._svc.create(
            requester, self._name(create), create.jids(), expires=expires, temporary=create["temporary"]
        )
        return self._list_reply(iq, row)

    async def _rename(self, iq: Iq, requester: str) -> Iq:
        rename = iq["lists_rename"]
        if not rename["new_name"]:
            raise XMPPError("bad-request", "new-name is required", etype="modify")
        return self._list_reply(iq, await self._svc.rename(requester, self._name(rename), rename["new_name"]))

    async def _add(self, iq: Iq, requester: str) -> Iq:
        add = iq["lists_add"]
        row, _ = await self._svc.add(requester, self._name(add), add.jids())
        return self._list_reply(iq, row)

    async def _remove(self, iq: Iq, requester: str) -> Iq:
        remove = iq["lists_remove"]
        row, _ = await self._svc.remove(requester, self._name(remove), remove.jids())
        return self._list_reply(iq, row)

    async def _delete(self, iq: Iq, requester: str) -> Iq:
        await self._svc.delete(requester, self._name(iq["lists_delete"]))
        return iq.reply(clear=True)

    async def _send(self, iq: Iq, requester: str) -> Iq:
        send = iq["lists_send"]
        row = await self._svc.get(requester, self._name(send))
        status = await self._svc.send_to_list(row, send["body"], only=send["only"] or "")
        return self._fanout_reply(iq, status)

    async def _fanout(self, iq: Iq, requester: str) -> Iq:
        fanout_id = iq["lists_fanout"]["id"]
        if not fanout_id:
            raise XMPPError("bad-request", "the id of one of your fan-outs is required", etype="modify")
        return self._fanout_reply(iq, await self._svc.status(requester, fanout_id))

    async def _fanouts(self, iq: Iq, requester: str) -> Iq:
        reply = iq.reply(clear=True)
        fanouts = reply["lists_fanouts"]
        for fanout in self._svc.recent_fanouts(requester):
            element = stanza.Fanout()
            self._fill_fanout(element, await self._svc.status(requester, fanout.id), fanout, copies=False)
            fanouts.append(element)
        return reply

    async def _recall(self, iq: Iq, requester: str) -> Iq:
        fanout_id = iq["lists_recall"]["id"]
        if not fanout_id:
            raise XMPPError("bad-request", "the id of one of your fan-outs is required", etype="modify")
        return self._fanout_reply(iq, await self._svc.recall(requester, fanout_id))

    # -- component side: messages ----------------------------------------------------------

    async def _message(self, msg: Any) -> None:
        if msg["type"] not in ("chat", "normal"):
            return  # errors (bounces), headlines, groupchat: nothing to fan out
        to_list = msg["to"].bare != self.xmpp.boundjid.bare
        retract_ref = _retract_ref(msg)
        replace_ref = None if retract_ref else _replace_ref(msg)
        if not retract_ref and e2ee.is_encrypted(msg.xml):
            raise XMPPError("not-acceptable", ENCRYPTED_REFUSED, etype="modify")
        body = msg["body"]
        if not body and not retract_ref:
            return  # chat states, receipts, markers
        requester = self._requester(msg)
        msg_id, origin_id = _ref(msg)
        svc = self._svc
        try:
            row = await svc.by_jid(requester, msg["to"]) if to_list else None
            if retract_ref:
                status = await svc.recall(requester, (await svc.by_source(requester, retract_ref)).id)
                done = "Recalled"
            elif replace_ref:
                status = await svc.correct(requester, replace_ref, body)
                done = "Corrected"
            elif row is not None:
                status = await svc.send_to_list(row, body, source_id=msg_id, source_origin=origin_id)
                done = "Sent"
            else:
                status = await svc.send_to_addresses(
                    requester, self._addresses(msg), body, source_id=msg_id, source_origin=origin_id
                )
                done = "Sent"
        except ListError as exc:
            log.info("Refused a message from %s to %s: %s", msg["from"], msg["to"], exc.text)
            raise XMPPError(exc.condition, exc.text, etype=exc.etype) from None
        self._acknowledge(msg, status, done)

    @staticmethod
    def _addresses(msg: Message) -> list[str]:
        """The XEP-0033 addresses that get a copy; ``bad-request`` for any the service cannot use."""
        jids = []
        for address in msg["addresses"]["addresses"]:
            if address["type"] not in DELIVERED_TYPES or address["delivered"]:
                continue  # replyto, replyroom, noreply, ofrom; or delivered by an earlier hop
            jid = address.xml.get("jid", "")
            if not jid or address.xml.get("node"):
                raise XMPPError("bad-request", "only addresses with a jid and no node are supported", etype="modify")
            jids.append(jid)
        return jids

    def _acknowledge(self, msg: Message, status: FanoutStatus, done: str) -> None:
        """Tell the sending device how the fan-out went; answer a XEP-0184 request."""
        component = self.xmpp.boundjid.bare
        sender = msg["to"].bare or component
        if msg.xml.find(f"{{{NS_RECEIPTS}}}request") is not None and msg["id"]:
            receipt = self.xmpp.make_message(mto=msg["from"], mfrom=sender, mtype=msg["type"])
            receipt.xml.append(Element(f"{{{NS_RECEIPTS}}}received", id=msg["id"]))
            receipt.send()
        fid = status.fanout.id
        text = (
            f"{done}: {status.summary()}. Fan-out {fid}: send “list status {fid}” or “list recall {fid}” "
            f"to bot@{component}."
        )
        notice = self.xmpp.make_message(mto=msg["from"], mfrom=sender, mtype="chat", mbody=text)
        self._fill_fanout(notice["lists_fanout"], status, status.fanout, copies=False)
        notice.send()

    async def settle(self, timeout: float = 10.0) -> None:
        """Return once the server has processed every stanza sent so far (a XEP-0199 ping to it:
        a server handles a component's stanzas in order).  The fan-out paces itself with this."""
        if not self.xmpp.is_connected():
            return
        iq = self.xmpp.make_iq_get(ito=self.local_domain or self.xmpp.boundjid.domain.split(".", 1)[-1])
        iq.xml.append(Element("{urn:xmpp:ping}ping"))
        try:
            await iq.send(timeout=timeout)
        except Exception as exc:  # an error answer or a timeout: pacing is best effort
            log.debug("settle: %s", exc)

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


__all__ = ["COUNTS", "ForLists", "XEP_CourierLists", "parse_stamp", "stamp"]
