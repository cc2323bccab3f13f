"""Declarative commands, one class each, served both as XEP-0050 ad-hoc commands
(:mod:`.adhoc`) and by the text bot on Courier's JID (:mod:`.bot`).

A command declares its node, its name, who may run it, its form fields and the
words the bot knows it by; :meth:`Command.run` takes the submitted values and
returns a :class:`Result` (text and/or a table).  Expected failures raise
:class:`CommandError`, whose message is shown to the user as it is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ..delivery.chat_reports import ChatReports
    from ..delivery.drafts import DraftService
    from ..delivery.pipeline import Pipeline
    from ..lists import ListService
    from ..sms.service import SmsService


FIRST_LINE = 80  # columns: a result's first line fits a terminal


class CommandError(Exception):
    """A failure to show the user (bad input, unknown id, too late…)."""


@dataclass
class Field:
    """One form field (XEP-0004)."""

    var: str
    label: str
    type: str = "text-single"  # text-single | list-single | boolean | fixed
    required: bool = False
    options: list[tuple[str, str]] = field(default_factory=list)  # (value, label)
    default: str = ""
    desc: str = ""


@dataclass
class Result:
    """What a command answers: one short sentence, optional details, and optionally a table.

    *text* is a single line of at most :data:`FIRST_LINE` columns: terminal clients
    (Poezio) show only the first line of a result.  Anything longer goes in *details*.
    """

    text: str
    columns: list[tuple[str, str]] = field(default_factory=list)  # (key, label)
    rows: list[dict[str, str]] = field(default_factory=list)
    details: str = ""


@dataclass
class Context:
    """Who runs a command, and the services it may use."""

    requester: str  # bare JID, already checked to be a user of this server
    pipeline: Pipeline
    drafts: DraftService | None = None  # drafts (P5)
    lists: ListService | None = None  # broadcast lists (P4)
    sms: SmsService | None = None  # phone numbers, SMS fallback (P3)
    admin: bool = False  # the requester is in admin.jids (commands/admin.py)
    domain: str = ""  # the server's domain
    statistics: Callable[[], Awaitable[dict[str, float]]] | None = None  # the instance's figures (admins)
    chat: ChatReports | None = None  # "reports chat": delivered/read told in a chat line


class Command(ABC):
    """A command; subclasses are declarations plus :meth:`run`."""

    node: ClassVar[str]
    name: ClassVar[str]
    help: ClassVar[str]  # one line, for the bot's help
    example: ClassVar[str]  # a bot example
    words: ClassVar[tuple[str, ...]]  # the bot's verbs for it
    admin: ClassVar[bool] = False  # only for admin.jids; anyone else gets forbidden

    def fields(self, ctx: Context) -> list[Field]:
        """The form (no fields: the command runs at once, single-stage)."""
        return []

    async def form(self, ctx: Context) -> list[Field]:
        """The form as offered; override when building it needs the store (choices to pick from)."""
        return self.fields(ctx)

    def parse(self, word: str, args: str) -> dict[str, str]:
        """Bot text after the verb → form values; raise CommandError with usage."""
        return {}

    @abstractmethod
    async def run(self, ctx: Context, values: dict[str, Any]) -> Result: ...


_BREAKS = (". ", "; ", " — ", ": ", ", ")


def shape(text: str) -> str:
    """*text* with a first line that is one whole sentence of at most :data:`FIRST_LINE` columns.

    Usage messages get a short first line of their own; a longer first line is cut at its
    first sentence, clause or colon break that fits, and the rest follows on the next line.
    """
    first, _, rest = text.partition("\n")
    if first.startswith("Usage:"):
        return "Not understood; the usage follows.\n" + text
    if len(first) <= FIRST_LINE and first.rstrip()[-1:] in ".?!)”":
        return text
    for mark in _BREAKS:
        cut = first.find(mark, 0, FIRST_LINE)
        if cut > 0:
            head, tail = first[:cut].rstrip(".;:,"), first[cut + len(mark) :].strip()
            tail = tail[:1].upper() + tail[1:]
            return "\n".join(filter(None, (head + ".", tail, rest)))
    return text


def text_value(values: dict[str, Any], var: str) -> str:
    """A submitted value as text (forms may give lists, booleans or nothing)."""
    value = values.get(var)
    if isinstance(value, list):
        value = "\n".join(str(v) for v in value)
    return "" if value is None else str(value).strip()


def bool_value(values: dict[str, Any], var: str) -> bool | None:
    value = values.get(var)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise CommandError(f"{var}: say on or off")


def all_commands() -> list[Command]:
    """Every command, in the order the bot's help lists them (one import per feature module)."""
    from . import admin, builtin, drafts, lists, receipts, sms

    modules = [builtin, receipts, drafts, lists, sms, admin]
    return [c() for module in modules for c in module.COMMANDS]
