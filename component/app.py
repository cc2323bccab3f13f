"""Start-up: config → store → pipeline → ComponentXMPP, and the run loop.

:class:`Courier` is the XEP-0114 component.  It is the pipeline's
:class:`~component.delivery.pipeline.Transport`: acknowledgements (and releases
by reference) are batched into one stanza per event-loop turn by the route plugin,
other releases are XEP-0356 re-injections.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Awaitable, Callable
from xml.etree.ElementTree import Element

from slixmpp import JID, ComponentXMPP, Iq, Message, Presence
from slixmpp.exceptions import XMPPError

from . import __version__, metrics, standby
from .commands import Context, all_commands, xep_0050_fix
from .commands.adhoc import AdhocCommands, forbidden
from .commands.bot import Bot
from .config import Config
from .delivery import chat_reports, federation
from .delivery.drafts import DraftService, Limits
from .delivery.pipeline import Handoff, NotFound, Pipeline, Report, encrypted
from .delivery.retention import Retention
from .delivery.states import State, hop_word
from .drafts import DraftMessages, DraftsAdapter
from .errors import as_xmpp_errors
from .lists import xmpp as lists_xmpp
from .namespaces import NS_ADDRESS, OUR_TAG_PREFIX
from .ops import service
from .ops.http import MetricsServer
from .ratelimit import RequestLimiter
from .scheduler import Scheduler
from .sms.xmpp import SmsXmpp
from .store import Store
from .store.errors import StoreUnavailable
from .util import stamp, stamp_or_now
from .xep import drafts as xep_drafts
from .xep import hops, receipts, route

log = logging.getLogger("courier")


class HopsAdapter:
    """courier-hops requests answered from the pipeline (the plugin's HopsService)."""

    def __init__(self, pipeline: Pipeline, make_iq: Callable[[], Iq]) -> None:
        self.pipeline = pipeline
        self.make_iq = make_iq

    async def trace(self, requester: str, msg_id: str) -> Iq | None:
        try:
            m, hop_list = await self.pipeline.trace(requester, msg_id)
        except NotFound:
            return None
        iq = self.make_iq()
        trace = iq["hops_trace"]
        trace["id"], trace["origin_id"], trace["to"] = m.msg_id, m.origin_id, m.recipient_bare
        trace["state"] = hop_word(m.state.value, m.hold_reason)
        if encrypted(m):
            trace["encrypted"] = "true"  # instead of any text: Courier never reads it
        for h in hop_list:
            item = hops.Hop()
            item["state"] = hop_word(h.label, h.note)
            item["at"], item["place"], item["note"] = stamp(h.at), h.place, h.note
            trace.append(item)
        return iq

    async def pending(self, requester: str) -> list[dict[str, str]]:
        return [
            {
                "id": m.msg_id or m.origin_id,
                "to": m.recipient_bare,
                "state": hop_word(State.HELD.value, m.hold_reason),
                "since": stamp(m.created),
                **({"encrypted": "true", "body": ""} if encrypted(m) else {"body": m.body or ""}),
            }
            for m in self.pipeline.pending(requester)
        ]

    async def recall(self, requester: str, msg_id: str) -> None:
        await self._change(self.pipeline.recall(requester, msg_id))

    async def edit(self, requester: str, msg_id: str, body: str) -> None:
        await self._change(self.pipeline.edit(requester, msg_id, body))

    @staticmethod
    async def _change(operation: Awaitable[object]) -> None:
        with as_xmpp_errors():
            await operation


class ReceiptsAdapter:
    """courier-receipts requests answered from the pipeline (the plugin's ReceiptsService)."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def policy_of(self, user: str, contact: str) -> str:
        return self.pipeline.policy_of(user, contact)

    def policies(self, user: str) -> tuple[str, dict[str, str]]:
        return self.pipeline.policies_of(user)

    async def set_policy(self, user: str, contact: str, policy: str | None) -> None:
        await self.pipeline.set_policy(user, contact, policy)

    async def confirm(self, user: str, msg_id: str, sender: str | None) -> None:
        with as_xmpp_errors(not_found="you received no message with that id"):
            await self.pipeline.confirm(user, msg_id, sender)


class Courier(ComponentXMPP):
    """The Courier component."""

    def __init__(self, config: Config, store: Store) -> None:
        super().__init__(config.jid, config["xmpp.secret"], config["xmpp.host"], config["xmpp.port"])
        self.config = config
        self.store = store
        #: The one scheduler: ends of undo-send windows, the drafts' and the SMS outbox's
        #: timers, the retention purge (component/scheduler.py).
        self.scheduler = Scheduler()
        self.pipeline = Pipeline(store, self, config.domain, config["delivery.undo_window"], self.scheduler)
        self.chat_reports = chat_reports.attach(self)  # "reports chat": a chat line when delivered or read
        self._connected = asyncio.Event()
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0356")
        self.register_plugin("xep_0334")  # message processing hints on Courier's own messages
        self.register_plugin(
            "courier_route",
            module=route,
            pconfig={
                "server": config.domain,
                "health": store.flush,
                "handoff": self._on_handoff,
                "routed": store.queue_routed,
            },
        )
        self.route: route.XEP_CourierRoute = self.plugin["courier_route"]  # type: ignore[typeddict-item]
        self.pipeline.pace = self.route.routed  # held messages flushed at login, a chunk at a time
        store.after_callbacks = self.route.flush_answers  # a commit's acks written at once
        self.register_plugin(
            "courier_hops",
            module=hops,
            pconfig={"service": HopsAdapter(self.pipeline, self.make_iq), "domain": config.domain},
        )
        self.hops: hops.XEP_CourierHops = self.plugin["courier_hops"]  # type: ignore[typeddict-item]
        self.register_plugin(
            "courier_receipts",
            module=receipts,
            pconfig={"service": ReceiptsAdapter(self.pipeline), "domain": config.domain},
        )
        # drafts (P5): the service and its timer, the courier-drafts IQs, Courier's reminders
        self.drafts = DraftService(
            store,
            self.pipeline,
            DraftMessages(self),
            Limits(config["drafts.max_pending"], config["drafts.max_length"], config["drafts.max_days_ahead"]),
            self.scheduler,
        )
        self.register_plugin(
            "courier_drafts",
            module=xep_drafts,
            pconfig={"service": DraftsAdapter(self.drafts), "domain": config.domain},
        )
        # broadcast lists (P4): the service, the courier-lists IQs, list JIDs and XEP-0033 fan-outs
        self.lists = lists_xmpp.attach(self, config, store, self.pipeline)
        self.register_plugin("xep_0004")
        xep_0050_fix.install()
        self.register_plugin("xep_0050")
        self.add_filter("out", xep_0050_fix.name_the_default_action)
        self.limiter = RequestLimiter(config["requests.per_second"], config["requests.burst"], config.jid)
        self.add_filter("in", self.limiter.filter)
        self.commands = all_commands()
        self.adhoc = AdhocCommands(self, self.commands, self.command_context)
        self.bot = Bot(self.commands)
        self.add_event_handler("message", self._on_chat)
        self.add_event_handler("session_start", self._session_start)
        self.add_event_handler("route_fallback", self.pipeline.fallback)
        self.add_event_handler("presence_available", self._on_presence)
        self.add_event_handler("presence_unavailable", self._on_presence)
        self.add_event_handler("privileges_advertised", self._on_privileges)
        self.federation = federation.attach(self)  # bounces, Courier peers (xeps/courier-federation.xml)
        # SMS fallback (P3): phone numbers, fallback in the pipeline, number JIDs, inbound SMS (component/sms/)
        self.sms = SmsXmpp(self, config, store, self.pipeline) if config["sms.enabled"] else None

    async def _session_start(self, _event: object) -> None:
        disco = self.plugin["xep_0030"]
        disco.set_identities(identities=[("component", "generic", None, "Courier")])
        if self.sms is not None:
            self.sms.advertise()  # the gateway identity (XEP-0100), after the reset above
        self.adhoc.register()  # after the session binds: disco data is reset then
        log.info("Courier %s connected to %s as %s", __version__, self.config["xmpp.host"], self.boundjid)
        metrics.connected(True)
        self._connected.set()
        await self.pipeline.resend_unconfirmed()

    def _on_privileges(self, _event: object) -> None:
        perms = self.plugin["xep_0356"].granted_privileges.get(self.config.domain)
        if perms is not None:
            log.info(
                "Privileges granted by %s: message=%s presence=%s roster=%s", self.config.domain,
                getattr(perms.message, "value", perms.message), getattr(perms.presence, "value", perms.presence),
                getattr(perms.roster, "value", perms.roster),
            )  # fmt: skip
        if perms is None or getattr(perms.message, "value", perms.message) != "outgoing":
            log.error(
                "%s did not grant message='outgoing' (XEP-0356): held messages cannot be released. "
                "Check privileged_entities in the Prosody config (courier prosody-config).",
                self.config.domain,
            )

    def command_context(self, jid: JID) -> Context:
        """Who may run commands: users of our domain; anyone else is refused."""
        if not jid.user or jid.domain != self.config.domain:
            raise forbidden(jid, self.config.domain)
        return Context(
            requester=str(jid.bare),
            pipeline=self.pipeline,
            drafts=self.drafts,
            lists=self.lists,
            sms=self.sms.service if self.sms is not None else None,
            admin=str(jid.bare).lower() in self.config.admins,
            domain=self.config.domain,
            statistics=lambda: metrics.statistics(self),
            chat=self.chat_reports,
        )

    async def _on_chat(self, msg: Message) -> None:
        """The text bot: a chat message to Courier's JID is a command."""
        # The bot answers on Courier's JID and on bot@ it (clients such as Converse.js
        # only open chats with user@domain addresses).
        if msg["type"] not in ("chat", "normal") or msg["to"].bare not in (
            self.boundjid.bare,
            f"bot@{self.boundjid.bare}",
        ):
            return
        if any(child.tag.startswith(OUR_TAG_PREFIX) for child in msg.xml):
            return  # a (forged) route stanza, refused by its plugin
        if msg.xml.find(f"{{{NS_ADDRESS}}}addresses") is not None:
            return  # XEP-0033 multicast: fanned out by the courier-lists plugin
        try:
            ctx = self.command_context(msg["from"])
        except XMPPError:
            msg.reply(f"Courier serves the users of {self.config.domain} only.").send()
            return
        answer = await self.bot.answer(ctx, msg["body"])
        reply = self.make_message(mto=msg["from"], mfrom=msg["to"].bare, mbody=answer, mtype="chat")
        reply.send()

    def _spawn_event(self, xml: Element) -> None:
        """Every stanza received (slixmpp's entry for them, from the XML parser): the route's
        hand-offs and ``<routed/>`` confirmations, two stanzas per message, are taken as XML
        (``route.take``); slixmpp builds a stanza object for everything else, runs the *in*
        filters and matches it against every handler, as before.  Building, filtering and
        matching were about half of Courier's CPU per hand-off (bench/courier_alone.py).

        This overrides a private method of slixmpp (``XMLStream._spawn_event``, 1.17): that
        is why pyproject.toml pins slixmpp to 1.17.x.  Before moving the pin, check that the
        method still exists with this signature, is still called for every stanza of the
        stream (``data_received``), and still only filters, builds and dispatches.  The tests
        of the route (tests/conformance/test_delivery.py) fail at once if hand-offs stop
        arriving here."""
        if not self.route.take(xml):
            super()._spawn_event(xml)

    def _on_handoff(self, h: Element, inner: Element, stamp: str) -> None:
        """A valid hand-off from the server (the route plugin's callback): *h* the ``<handoff/>``."""
        metrics.handoff()
        hid, recipient, copy_kept = h.get("id", ""), h.get("recipient") or "offline", h.get("copy") == "kept"
        adds = copy_kept and h.get("adds") == "tracked"
        self.federation.handoff(Handoff(hid, recipient, inner, stamp_or_now(stamp), copy_kept, adds))

    def _on_presence(self, pres: Presence) -> None:
        sender = pres["from"]
        if sender.domain != self.config.domain or not sender.user:
            return
        self.pipeline.presence(sender.full, pres["type"] != "unavailable")

    # -- Transport -----------------------------------------------------------

    def ack(self, hid: str) -> None:
        metrics.ack()
        self.route.ack(hid)

    def release_copy(self, hid: str, to: str = "", now: bool = False) -> None:
        self.federation.release_copy(hid, to)
        if now:
            self.route.flush_answers()

    def release(self, hid: str, inner: Element, sender_bare: str) -> None:
        self.federation.release(hid, inner, sender_bare)

    def originate(self, inner: Element, sender_bare: str, token: str | None = None) -> None:
        self.federation.originate(inner, sender_bare, token)  # (toward a peer: tracked, remote.py)

    def send_own(self, message: Element, token: str) -> None:
        self.route.send_own(message, token)

    def notice(self, sender: str, recipient: str, policy: str) -> None:
        text = {
            "refuse": f"{recipient} does not send receipts or read markers: do not wait for them.",
            "manual": f"{recipient} confirms receipts by hand.",
        }.get(policy, f"{recipient} sends receipts again.")
        msg = self.make_message(mto=sender, mfrom=self.boundjid.bare, mtype="headline", mbody=text)
        msg["receipts_notice"]["jid"] = recipient
        msg["receipts_notice"]["policy"] = policy
        msg.enable("no-store")  # XEP-0334, slixmpp's xep_0334
        msg.send()

    def report(self, report: Report) -> None:
        if report.sender.rpartition("@")[2] != self.config.domain:
            return  # a remote sender: its server's Courier, or it directly (delivery/inbound.py)
        self.hops.queue_report(report.sender, report.fields())  # with this commit's others


async def run(config: Config, stop: asyncio.Event | None = None) -> None:
    """Run Courier until *stop* is set (or SIGTERM/SIGINT); reconnect when Prosody goes away."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    lease = await standby.take(config, stop)  # PostgreSQL: wait to be the active Courier (the lease)
    store = await Store.open(config.store_url, config["store.synchronous"], config["store.batch_max"])
    courier = Courier(config, store)
    standby.fence(lease, courier)  # a lost lease: disconnect at once and exit
    service.on_sighup(courier)  # reloads log level and limits (docs/operators.md)
    metrics.INFO.info({"version": __version__, "jid": config.jid})
    http = MetricsServer(courier, config["metrics.host"], config["metrics.port"]) if config["metrics.port"] else None
    if http is not None:
        await http.start()
    await courier.pipeline.start()
    await courier.federation.start()
    await courier.chat_reports.start()
    await courier.drafts.start()
    await courier.lists.start()
    if courier.sms is not None:
        await courier.sms.start()
    retention = Retention(store, config["store.retention_days"], courier.scheduler)
    retention.start()
    gc.freeze()  # what start-up made lives as long as Courier: the collector no longer walks it (bench/README.md)
    disconnected = asyncio.Event()
    courier.add_event_handler("disconnected", lambda _e: disconnected.set())
    courier.add_event_handler("disconnected", lambda _e: metrics.connected(False))
    courier.add_event_handler("connection_failed", lambda _e: disconnected.set())
    delay = 0.2
    try:
        while not stop.is_set():
            disconnected.clear()
            courier._connected.clear()
            log.info("Connecting to %s:%s as %s", config["xmpp.host"], config["xmpp.port"], config.jid)
            courier.connect(config["xmpp.host"], config["xmpp.port"])
            stopper = asyncio.ensure_future(stop.wait())
            gone = asyncio.ensure_future(disconnected.wait())
            up = asyncio.ensure_future(courier._connected.wait())
            await asyncio.wait({stopper, gone, up}, return_when=asyncio.FIRST_COMPLETED)
            if up.done():
                delay = 0.2
                await asyncio.wait({stopper, gone}, return_when=asyncio.FIRST_COMPLETED)
            for t in (stopper, gone, up):
                t.cancel()
            if stop.is_set():
                break
            log.warning("Disconnected from %s; reconnecting in %.1fs", config["xmpp.host"], delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
    finally:
        # A stop is bounded (SIGTERM within 5 s) even when the store cannot commit: waits on it
        # give up quickly, and close() drops what could not be stored (never acknowledged, so
        # Prosody delivers or re-sends those messages itself).
        store.flush_patience, store.close_patience = 0.5, 1.0
        courier.scheduler.stop()  # no timer rings any more (a drafts round under way ends itself)
        courier.drafts.stop()
        if courier.is_connected():
            courier.disconnect()
            try:
                await asyncio.wait_for(disconnected.wait(), 1)
            except TimeoutError:
                pass
        try:
            await courier.drafts.drain()
            if courier.sms is not None:
                await courier.sms.stop()
            await courier.pipeline.drain()
        except StoreUnavailable as exc:
            log.error("Stopping with work not stored: %s", exc)
        await retention.stop()
        await courier.scheduler.close()
        if http is not None:
            await http.stop()
        await store.close()
        log.info("Courier stopped")
