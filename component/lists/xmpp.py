"""Broadcast lists (P4) on the XMPP side: the glue between :class:`~.service.ListService`
and the protocol-only courier-lists plugin (:mod:`component.xep.lists`).

- :class:`ListsAdapter` is the plugin's service: lists and fan-outs in the protocol's
  terms (:class:`~component.xep.lists.ListInfo`, :class:`~component.xep.lists.FanoutInfo`),
  :class:`~.model.ListError` as the XMPP error it names (:mod:`component.errors`);
- :class:`ListsXmpp` routes the messages for lists (:class:`ForLists`): a chat message a
  user sends to one of their list JIDs (``<name>+<owner>@courier…``) or to Courier's JID
  with XEP-0033 ``<addresses/>`` is fanned out; a XEP-0424 retraction or XEP-0308
  correction sent there recalls or corrects the whole fan-out of the message it names;
  the sending device is told how it went (a message from the list's JID, or Courier's,
  with ``<fanout/>``) and a XEP-0184 request is answered.  It makes a list a contact of
  its owner (roster, presence, subscription) and paces fan-outs (:meth:`ListsXmpp.settle`).

:func:`attach` builds all of it on the component.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from xml.etree.ElementTree import Element

from slixmpp import Message
from slixmpp.exceptions import XMPPError
from slixmpp.xmlstream import StanzaBase
from slixmpp.xmlstream.handler import CoroutineCallback
from slixmpp.xmlstream.matcher.base import MatcherBase

from ..delivery import stanzas
from ..errors import as_xmpp_errors, xmpp_error
from ..namespaces import NS_ADDRESS, NS_RECEIPTS
from ..xep import e2ee
from ..xep import lists as xep_lists
from ..xep.lists import CopyInfo, FanoutInfo, ListInfo, fill_fanout
from .model import FanoutStatus, Limits, ListError, copy_state
from .names import is_list_node
from .service import ListService

if TYPE_CHECKING:
    from slixmpp import ComponentXMPP

    from ..config import Config
    from ..delivery.pipeline import Pipeline
    from ..store import Store
    from ..store.lists import ListRow

log = logging.getLogger(__name__)

#: XEP-0033 address types that receive a copy (every copy is individual: to and cc act as bcc).
DELIVERED_TYPES = ("to", "cc", "bcc")
#: Why an end-to-end encrypted message to a list JID (or with XEP-0033 addresses) is refused.
ENCRYPTED_REFUSED = (
    "this message is end-to-end encrypted: a broadcast list sends a copy of its text to every member, "
    "and Courier cannot encrypt it for each of them; send it to each member from your client"
)


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


class ListsAdapter:
    """The courier-lists plugin's service (:class:`component.xep.lists.lists.ListsService`)."""

    def __init__(self, service: ListService) -> None:
        self.service = service

    def list_info(self, row: ListRow) -> ListInfo:
        return ListInfo(row.name, self.service.jid_of(row), list(row.members), row.created, row.expires)

    @staticmethod
    def fanout_info(status: FanoutStatus) -> FanoutInfo:
        f = status.fanout
        copies = [CopyInfo(c.member, c.msg_id, copy_state(c)) for c in status.copies]
        return FanoutInfo(f.id, f.created, f.list_name, status.counts, copies)

    async def lists(self, requester: str) -> list[ListInfo]:
        with as_xmpp_errors():
            return [self.list_info(row) for row in await self.service.lists(requester)]

    async def get(self, requester: str, name: str) -> ListInfo:
        with as_xmpp_errors():
            return self.list_info(await self.service.get(requester, name))

    async def create(
        self, requester: str, name: str, members: list[str], expires: float | None, temporary: bool
    ) -> ListInfo:
        with as_xmpp_errors():
            row = await self.service.create(requester, name, members, expires=expires, temporary=temporary)
            return self.list_info(row)

    async def rename(self, requester: str, name: str, new_name: str) -> ListInfo:
        with as_xmpp_errors():
            return self.list_info(await self.service.rename(requester, name, new_name))

    async def add(self, requester: str, name: str, members: list[str]) -> ListInfo:
        with as_xmpp_errors():
            return self.list_info((await self.service.add(requester, name, members))[0])

    async def remove(self, requester: str, name: str, members: list[str]) -> ListInfo:
        with as_xmpp_errors():
            return self.list_info((await self.service.remove(requester, name, members))[0])

    async def delete(self, requester: str, name: str) -> None:
        with as_xmpp_errors():
            await self.service.delete(requester, name)

    async def send(self, requester: str, name: str, body: str, only: str) -> FanoutInfo:
        with as_xmpp_errors():
            row = await self.service.get(requester, name)
            return self.fanout_info(await self.service.send_to_list(row, body, only=only))

    async def fanout(self, requester: str, fanout_id: str) -> FanoutInfo:
        with as_xmpp_errors():
            return self.fanout_info(await self.service.status(requester, fanout_id))

    async def fanouts(self, requester: str) -> list[FanoutInfo]:
        with as_xmpp_errors():
            return [
                self.fanout_info(await self.service.status(requester, fanout.id))
                for fanout in self.service.recent_fanouts(requester)
            ]

    async def recall(self, requester: str, fanout_id: str) -> FanoutInfo:
        with as_xmpp_errors():
            return self.fanout_info(await self.service.recall(requester, fanout_id))


class ListsXmpp:
    """Messages to lists, a list as its owner's contact, and pacing, on *xmpp*."""

    def __init__(self, xmpp: ComponentXMPP, service: ListService, plugin: xep_lists.XEP_CourierLists) -> None:
        self.xmpp = xmpp
        self.service = service
        self.plugin = plugin
        xmpp.register_plugin("xep_0033")  # XEP-0033 addresses (and their disco feature)
        component = xmpp.boundjid.bare
        xmpp.register_handler(CoroutineCallback("Lists message", ForLists(component), self._message))
        xmpp.add_event_handler("presence_subscribe", self._subscribe)
        xmpp.add_event_handler("session_bind", self._session_bind)
        service.pace = self.settle
        service.on_gone = self._gone

    def _session_bind(self, _jid: Any) -> None:
        for owner, list_jid in self.service.list_jids():
            self._allow(list_jid, owner)

    # -- a list as a contact ---------------------------------------------------------------

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
        if to.domain != self.xmpp.boundjid.bare or not to.user:
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

    # -- messages to lists -----------------------------------------------------------------

    async def _message(self, msg: Any) -> None:
        if msg["type"] not in ("chat", "normal"):
            return  # errors (bounces), headlines, groupchat: nothing to fan out
        to_list = msg["to"].bare != self.xmpp.boundjid.bare
        retract_ref = stanzas.retract_ref(msg.xml)
        replace_ref = None if retract_ref else stanzas.replace_ref(msg.xml)
        if not retract_ref and e2ee.is_encrypted(msg.xml):
            raise XMPPError("not-acceptable", ENCRYPTED_REFUSED, etype="modify")
        body = msg["body"]
        if not body and not retract_ref:
            return  # chat states, receipts, markers
        requester = self.plugin.requester(msg)
        msg_id, origin_id = stanzas.refs(msg.xml)
        svc = self.service
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
            raise xmpp_error(exc) from None
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
        fill_fanout(notice["lists_fanout"], ListsAdapter.fanout_info(status), copies=False)
        notice.send()

    async def settle(self, timeout: float = 10.0) -> None:
        """The fan-out's pacing: the route plugin's settle (a ping answered in order)."""
        await self.xmpp.plugin["courier_route"].settle(timeout)  # type: ignore[typeddict-item]

def attach(xmpp: ComponentXMPP, config: Config, store: Store, pipeline: Pipeline) -> ListService:
    """Build the lists service, register the courier-lists plugin with its adapter, route lists' messages."""
    limits = Limits(config["lists.max_members"], config["lists.max_lists"], config["lists.fanouts_per_minute"])
    service = ListService(store, pipeline, config.jid, config.domain, limits)
    xmpp.register_plugin(
        "courier_lists", module=xep_lists, pconfig={"service": ListsAdapter(service), "domain": config.domain}
    )
    ListsXmpp(xmpp, service, xmpp.plugin["courier_lists"])  # type: ignore[typeddict-item]
    return service
