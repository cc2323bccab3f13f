"""Tracked-message rows with pinned ids and times, and a bounded flush, for the store's tests
(the fixtures ``db`` and ``store`` are in conftest.py)."""

from __future__ import annotations

import asyncio
from xml.etree import ElementTree as ET

from component.delivery.states import State
from component.store import MessageRow, Store

T0 = 1_795_000_000.0  # 2026-11-19, a pinned clock
JULIET = "juliet@shakespeare.lit"
ROMEO = "romeo@shakespeare.lit"
TIMEOUT = 10.0


def row(
    seq: int,
    *,
    hid: str | None = "",
    sender: str = JULIET,
    resource: str = "balcony",
    recipient: str = ROMEO,
    msg_id: str | None = None,
    origin_id: str | None = None,
    kind: str = "message",
    body: str | None = "Wherefore art thou Romeo?",
    state: State = State.ACCEPTED,
    hold_reason: str = "",
    release_at: float | None = None,
    created: float | None = None,
) -> MessageRow:
    """A tracked message with pinned ids derived from *seq*."""
    msg_id = f"msg-{seq:04d}" if msg_id is None else msg_id
    origin_id = f"origin-{seq:04d}" if origin_id is None else origin_id
    el = ET.Element(
        "{jabber:client}message",
        {"from": f"{sender}/{resource}", "to": recipient, "type": "chat", "id": msg_id},
    )
    if body is not None:
        ET.SubElement(el, "{jabber:client}body").text = body
    at = T0 + seq if created is None else created
    return MessageRow(
        seq=seq,
        hid=f"hid-{seq:04d}" if hid == "" else hid,
        sender=sender,
        sender_resource=resource,
        recipient=recipient,
        recipient_bare=recipient.split("/", 1)[0],
        msg_id=msg_id,
        origin_id=origin_id,
        kind=kind,
        body=body,
        stanza=ET.tostring(el, encoding="unicode"),
        state=state,
        hold_reason=hold_reason,
        release_at=release_at,
        created=at,
        updated=at,
    )


async def flush(store: Store) -> None:
    """The store's group commit, done (or a failure after TIMEOUT seconds)."""
    await asyncio.wait_for(store.flush(), TIMEOUT)
