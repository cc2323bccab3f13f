"""Commands for the server's admins (``admin.jids``), as Slidge and Biboumi have them:
statistics, one user's held messages (counts, never contents), release them now."""

from __future__ import annotations

from typing import Any

from ..ops import admin
from . import Command, CommandError, Context, Field, Result, text_value
from .receipts import _bare

_REASONS = (("recipient-offline", "recipient offline"), ("undo-window", "undo-send window"), ("queued", "queued"))


def _checked(ctx: Context) -> None:
    if not ctx.admin:  # the ad-hoc and bot front ends refuse first; this is the last line
        raise CommandError("Forbidden: for the server's admins only.")


class _OfUser(Command):
    """An admin command about one user: a JID field, or the bot's ``WORD JID``."""

    admin = True

    def fields(self, ctx: Context) -> list[Field]:
        return [Field("user", "User (JID)", required=True, desc=f"A user of this server, e.g. alice@{ctx.domain}")]

    def parse(self, word: str, args: str) -> dict[str, str]:
        if not args:
            raise CommandError(f"Usage: {self.example}")
        return {"user": args.split()[0]}

    @staticmethod
    def user(ctx: Context, values: dict[str, Any]) -> str:
        """The user's bare JID (``alice`` means ``alice@<domain>``); only admins get this far."""
        _checked(ctx)
        text = text_value(values, "user")
        return _bare(text if "@" in text else f"{text}@{ctx.domain}", "user")

#: (metric sample, label) rows of the statistics, in order
_FIGURES = (
    ("courier_connected", "Connected to the server (1 = yes)"),
    ("held", "Messages held now"),
    ("courier_handoffs_total", "Hand-offs received"),
    ("courier_acks_total", "Hand-offs acknowledged"),
    ("fallbacks", "Server fallbacks"),
    ("courier_releases_total", "Releases"),
    ("courier_recalls_total", "Recalls"),
    ("courier_edits_total", "Edits"),
    ("courier_store_commit_failures_total", "Store commit failures"),
    ("courier_drafts_pending", "Drafts pending"),
    ("courier_drafts_fired_total", "Drafts fired"),
    ("courier_fanout_copies_total", "List copies"),
    ("courier_sms_outbox", "SMS outbox"),
    ("courier_sms_sent_total", "SMS sent"),
    ("courier_sms_failed_total", "SMS failed"),
    ("rate_limited", "Rate-limited requests"),
    ("courier_log_errors_total", "Errors logged"),
)


class Statistics(Command):
    node = "admin-statistics"
    name = "Statistics (admins)"
    help = "admins only: this Courier's figures: connection, held messages, hand-offs, releases, queues, errors"
    example = "stats"
    words = ("stats", "statistics")
    admin = True

    async def run(self, ctx: Context, values: dict[str, Any]) -> Result:
        _checked(ctx)
        assert ctx.statistics is not None
        figures = await ctx.statistics()
        rows = [{"figure": label, "value": f"{figures.get(key, 0):g}"} for key, label in _FIGURES]
        held = figures.get("held", 0)
        return Result(
            f"Courier statistics: {held:g} message(s) held now.", [("figure", "Figure"), ("value", "Value")], rows
        )


class HeldOfUser(_OfUser):
    node = "admin-held"
    name = "Held messages of a user (admins)"
    help = "admins only: how many messages wait at Courier to and from a user (counts, not contents)"
    example = "held alice@example.org"
    words = ("held",)

    async def run(self, ctx: Context, values: dict[str, Any]) -> Result:
        user = self.user(ctx, values)
        counts = admin.held_of(ctx.pipeline, user)
        rows = [
            {"reason": label, "to": str(counts["to"][key]), "from": str(counts["from"][key])} for key, label in _REASONS
        ]
        to, sent = sum(counts["to"].values()), sum(counts["from"].values())
        return Result(
            f"{user}: {to} message(s) held for them, {sent} of theirs held.",
            [("reason", "Reason"), ("to", "To them"), ("from", "From them")],
            rows,
        )


class ReleaseUser(_OfUser):
    node = "admin-release"
    name = "Release a user's held messages now (admins)"
    help = "admins only: release every message held to or from a user now (offline: their server stores it)"
    example = "release alice@example.org"
    words = ("release",)

    async def run(self, ctx: Context, values: dict[str, Any]) -> Result:
        user = self.user(ctx, values)
        n = await admin.release_now(ctx.pipeline, user, f"released by admin {ctx.requester}")
        return Result(f"Released {n} message(s) to or from {user}.")


COMMANDS: list[type[Command]] = [Statistics, HeldOfUser, ReleaseUser]
