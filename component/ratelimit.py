"""Per-user rate limits on what users ask of Courier: IQs (our protocols, ad-hoc commands,
disco) and chat messages to the bot.

One token bucket per bare JID (``requests.per_second`` refilled, up to ``requests.burst``),
applied as a slixmpp *in* filter so that every protocol is covered in one place and a flood
costs Courier one error reply per stanza, not a command run. Stanzas from a server (Prosody's
hand-offs, privileged presence) are never limited. Over the limit: XEP-0086
``resource-constraint`` of type ``wait``, with a sentence.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict

from slixmpp import Iq, Message
from slixmpp.xmlstream import StanzaBase

from . import metrics

log = logging.getLogger(__name__)


class RequestLimiter:
    """Token buckets by user; :meth:`filter` is the slixmpp filter."""

    def __init__(self, per_second: float, burst: int, component: str, max_users: int = 100_000) -> None:
        self.per_second = per_second
        self.burst = float(max(burst, 1))
        self.addresses = {component, f"bot@{component}"}
        self.component = component
        self.max_users = max_users
        self.limited = 0  # requests refused so far (for metrics and tests)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # user -> (tokens, at)
        self._warned: set[str] = set()

    def allow(self, user: str, now: float | None = None) -> bool:
        """Take one token of *user*'s bucket; False when it is empty."""
        now = time.monotonic() if now is None else now
        tokens, at = self._buckets.pop(user, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.per_second)
        allowed = tokens >= 1.0
        self._buckets[user] = (tokens - 1.0 if allowed else tokens, now)
        if len(self._buckets) > self.max_users:
            self._buckets.popitem(last=False)  # the least recently seen user (memory stays bounded)
        if allowed:
            self._warned.discard(user)
        return allowed

    def _counted(self, stanza: StanzaBase) -> str | None:
        """The user a stanza is a request of, or None when it is not limited."""
        sender = stanza["from"]
        if not sender.user:
            return None  # a server: hand-offs, privileged stanzas, errors from Prosody
        if isinstance(stanza, Iq):
            if stanza["type"] not in ("get", "set"):
                return None
            to = stanza["to"]
            return sender.bare if to.domain == self.component or to.bare in self.addresses else None
        if isinstance(stanza, Message):
            if stanza["type"] in ("chat", "normal") and stanza["to"].bare in self.addresses and stanza["body"]:
                return sender.bare
        return None

    def filter(self, stanza: StanzaBase) -> StanzaBase | None:
        user = self._counted(stanza)
        if user is None or self.allow(user):
            return stanza
        self.limited += 1
        metrics.rate_limited("requests")
        if user not in self._warned:
            self._warned.add(user)
            log.warning("Rate limit: refusing requests of %s (over %g a second)", user, self.per_second)
        reply = stanza.reply(clear=True)
        reply["type"] = "error"
        reply["error"]["type"] = "wait"
        reply["error"]["condition"] = "resource-constraint"
        reply["error"]["text"] = (
            f"Too many requests: Courier answers at most {self.per_second:g} a second "
            f"(bursts of {self.burst:g}) per user. Wait a moment and try again."
        )
        reply.send()
        return None


__all__ = ["RequestLimiter"]
