"""How a tracked message is shown in lists, pickers and chat reports: one short preview."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .pipeline import encrypted

if TYPE_CHECKING:
    from ..store import MessageRow

PREVIEW = 30  # characters of text shown for a message


def preview(m: MessageRow, width: int = PREVIEW) -> str:
    """The text of *m* on one line, cut to *width* characters (the one place that decides it);
    never the fallback sentence of an end-to-end encrypted message, which is only named."""
    if encrypted(m):
        return f"🔒 encrypted message to {m.recipient_bare}"
    text = " ".join((m.body or "").split()) or "(no text)"
    return text if len(text) <= width else text[: width - 1] + "…"
