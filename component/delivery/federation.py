"""Federation on the sender's side: remote servers' bounces of released messages.

A message Courier released toward another server is re-injected from the
sender's bare JID, so the remote server's error comes back there;
mod_courier_route copies it to Courier (``<bounce/>``, xeps/courier-route.xml).
It becomes a ``failed`` hop with the remote condition, reported to the sender.
"""

from __future__ import annotations

import logging
from xml.etree import ElementTree as ET

from ..namespaces import NS_CLIENT, NS_STANZAS
from ..store import MessageRow
from .pipeline import Pipeline
from .states import Event

log = logging.getLogger(__name__)


def _bare(jid: str) -> str:
    return jid.partition("/")[0]


def _domain(jid: str) -> str:
    return _bare(jid).rpartition("@")[2]


def error_condition(error: ET.Element) -> tuple[str, str]:
    """(defined condition, text) of an error stanza; ("undefined-condition", "") when absent."""
    element = error.find(f"{{{NS_CLIENT}}}error")
    condition, text = "undefined-condition", ""
    if element is not None:
        for child in element:
            name = child.tag.rpartition("}")[2]
            if child.tag.startswith(f"{{{NS_STANZAS}}}"):
                if name == "text":
                    text = (child.text or "").strip()
                else:
                    condition = name
    return condition, text


async def bounced(pipeline: Pipeline, error: ET.Element) -> MessageRow | None:
    """Record a remote server's error for a released message as its ``failed`` hop.

    Only the recipient's own server can bounce a message: the error's ``from``
    (authenticated by s2s) must be the recipient of a message the local user
    sent with that id.  Anything else changes nothing.
    """
    sender, recipient, ref = _bare(error.get("to", "")), _bare(error.get("from", "")), error.get("id", "")
    if not ref or _domain(sender) != pipeline.domain or _domain(recipient) == pipeline.domain:
        return None
    await pipeline.store.flush()
    m = await pipeline.store.find_message(sender, recipient, ref)
    if m is None:
        return None
    condition, text = error_condition(error)
    if not pipeline.record_on(m, Event.FAIL, _domain(recipient), f"{condition}: {text}" if text else condition):
        return None  # e.g. already received or failed: the error says nothing new
    log.info("Message %d (%s -> %s) bounced by %s: %s", m.seq, sender, recipient, _domain(recipient), condition)
    await pipeline.store.flush()
    return m
