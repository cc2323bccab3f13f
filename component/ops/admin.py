"""The admins' view of one user's queue: counts (never contents) and "release now"."""

from __future__ import annotations

import time
from typing import Any

from .. import metrics


def held_of(pipeline: Any, user: str) -> dict[str, dict[str, int]]:
    """Open messages *to* and *from* *user*, by hold reason."""
    open_messages = list(pipeline.open.values())
    return {
        "to": metrics.held_now(m for m in open_messages if m.recipient_bare == user),
        "from": metrics.held_now(m for m in open_messages if m.sender == user),
    }


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
