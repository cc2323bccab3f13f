"""The text bot on Courier's JID: the same commands, typed as chat messages.

``help`` lists every command with an example; anything else is ``VERB ARGS``.
"""

from __future__ import annotations

import logging

from ..errors import SORRY, sentence
from . import Command, Context, Result, shape

log = logging.getLogger(__name__)


class Bot:
    """Turns a line of text into a command run, and the result into text."""

    def __init__(self, commands: list[Command]) -> None:
        self.commands = commands
        self.by_word = {word: c for c in commands for word in c.words}

    def help(self) -> str:
        lines = ["Courier commands (also as ad-hoc commands in your client):", "help — this list"]
        for c in self.commands:
            lines.append(f"{' | '.join(c.words)} — {c.help}. Example: {c.example}")
        return "\n".join(lines)

    async def answer(self, ctx: Context, text: str) -> str:
        word, _, args = text.strip().partition(" ")
        word = word.lower()
        if word in ("help", "?", ""):
            return self.help()
        command = self.by_word.get(word)
        if command is None:
            return f"Unknown command “{word}”. Send “help” for the list."
        if command.admin and not ctx.admin:
            return f"Forbidden: “{word}” is for the server's admins only."
        try:
            values = command.parse(word, args.strip())
            return render(await command.run(ctx, values))
        except Exception as exc:
            reason = sentence(exc)  # the one error boundary (component/errors.py)
            if reason is None:
                log.exception("bot command %r from %s failed", text[:80], ctx.requester)
                return SORRY
            return shape(reason)


def render(result: Result) -> str:
    """A result as plain text: the sentence, the details, then the table in aligned columns."""
    head = shape("\n".join(filter(None, (result.text, result.details))))
    if not result.columns:
        return head
    keys = [k for k, _ in result.columns]
    header = [label for _, label in result.columns]
    rows = [[row.get(k, "") for k in keys] for row in result.rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    lines = [head, "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    for r in rows:
        lines.append("  ".join(str(x).ljust(w) for x, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines)
