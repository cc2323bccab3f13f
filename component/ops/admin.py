"""The admins' view of one user's queue: counts (never contents) and "release now"."""

from __future__ import annotations

import time
from typing import Any

from slixmpp import JID
from slixmpp.jid import InvalidJID


def user_jid(text: str, domain: str) -> str:
    """A user's bare JID from what an admin typed (``alice`` means ``alice@<domain>``)."""
    text = text.strip()
    if text and "@" not in text:
        text = f"{text}@{domain}"
    try:
        jid = JID(text)
    except InvalidJID:
        raise ValueError(f"“{text}” is not a JID") from None
    if not jid.user:
        raise ValueError(f"“{text}” is not a user's JID")
    return str(jid.bare)


def held_of(pipeline: Any, user: str) -> dict[str, dict[str, int]]:
    """Open messages *to* and *from* *user*, by hold reason."""
    counts: dict[str, dict[str, int]] = {
        side: {"recipient-offline": 0, "undo-window": 0, "queued": 0} for side in ("to", "from")
    }
    for m in pipeline.open.values():
        reason = m.hold_reason if m.hold_reason in counts["to"] else "queued"
        if m.recipient_bare == user:
            counts["to"][reason] += 1
        if m.sender == user:
            counts["from"][reason] += 1
    return counts


async def release_now(pipeline: Any, user: str, note: str) -> int:
    """Release every held message to or from *user* now, oldest first; durable when it returns.

    A message for an offline recipient goes to their server, which stores it as it would
    without Courier (offline storage, archive).  Messages being sent as SMS are left alone.
    """
    now = time.time()
    chosen = sorted(
        (
            m
            for m in pipeline.open.values()
            if user in (m.recipient_bare, m.sender) and m.seq not in pipeline.sms_inflight
        ),
        key=lambda m: m.seq,
    )
    for m in chosen:
        pipeline._release(m, now, note)
    await pipeline.store.flush()
    return len(chosen)
