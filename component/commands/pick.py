"""Choosing one of your own pending messages without knowing its id.

Stock clients never show message ids, so every form that acts on a pending
message offers them as a list to pick from (number, recipient, age, text
preview), and the bot accepts the number shown by ``pending``: ``recall 2`` is
the second message of ``pending`` (oldest first).  Ids (or origin-ids) are still
accepted, for scripts.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..delivery.preview import preview
from . import CommandError, Context, Field

if TYPE_CHECKING:
    from ..store import MessageRow

__all__ = ["age", "message_field", "options", "preview", "ref_of", "resolve"]

MAX_NUMBER = 999  # "recall 2": a number up to this picks from "pending"; longer is an id


def age(created: float, now: float | None = None) -> str:
    """How long ago, in the largest whole unit: "just now", "5 min ago", "2 h ago", "3 d ago"."""
    seconds = max(0, int((time.time() if now is None else now) - created))
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


def ref_of(m: MessageRow) -> str:
    """The reference a form carries for *m*: its id, else its origin-id."""
    return m.msg_id or m.origin_id


def options(ctx: Context) -> list[tuple[str, str]]:
    """The requester's pending messages as (id, "1. to bob@…, 5 min ago: text…"), oldest first."""
    now = time.time()
    return [
        (ref_of(m), f"{n}. to {m.recipient_bare}, {age(m.created, now)}: {preview(m)}")
        for n, m in enumerate(ctx.pipeline.pending(ctx.requester), 1)
    ]


def message_field(ctx: Context, var: str = "id", required: bool = True) -> Field | None:
    """A list-single field of the requester's pending messages, or None when there are none."""
    choices = options(ctx)
    if not choices:
        return None
    return Field(
        var,
        "Message",
        "list-single",
        required=required,
        options=choices,
        default=choices[0][0],
        desc="One of your messages still waiting at the server",
    )


def resolve(ctx: Context, ref: str) -> str:
    """A number from ``pending`` (1 = the oldest) → that message's id; anything else is an id."""
    ref = ref.strip()
    if not ref:
        raise CommandError("Which message? Send “pending” and give its number.")
    held = ctx.pipeline.pending(ctx.requester)
    if any(ref in (m.msg_id, m.origin_id) for m in held):
        return ref
    if ref.isdigit() and 0 < len(ref) <= len(str(MAX_NUMBER)):
        n = int(ref)
        if not held:
            raise CommandError("You have no messages waiting at the server.")
        if not 1 <= n <= len(held):
            raise CommandError(f"There is no message {n}: “pending” lists {len(held)}.")
        return ref_of(held[n - 1])
    return ref
