"""Every command result's first line is one whole, short sentence (terminal clients such as
Poezio show only the first line): run every command through the bot against a real store and
pipeline, on success and error paths, and check each answer's first line."""

from __future__ import annotations

import dataclasses
import time
from xml.etree import ElementTree as ET

import pytest

from component.commands import FIRST_LINE, Context, all_commands
from component.commands.bot import Bot
from component.delivery.drafts import DraftService
from component.delivery.pipeline import Handoff, Pipeline
from component.lists import Limits, ListService
from component.store import Store
from tests import pgserver

from .delivery.test_pipeline import Recorder

ALICE = "alice@localhost"
BOB = "bob.with.a.longer.name@localhost"


class Notes:
    def reminder(self, draft: object) -> None: ...

    def fired(self, draft: object, how: str) -> None: ...

    def pending(self, device: str, drafts: object) -> None: ...


# (bot line) for every command: a success and the usual mistakes.  {id} = a held message's id.
LINES = [
    "pending", "recall", "recall 1", "recall 9", "recall nope", "edit", "edit 1",
    "edit 1 Meet me at ten instead", "trace", "trace 1", "trace nope",
    "settings", "undo", "undo soon", "undo 99999", "undo 30", "reports on", "reports chat", "reports off",
    "reports maybe", "settings frob",
    "receipts", "receipts manual", "receipts refuse " + BOB, "receipts clear " + BOB, "receipts frob",
    "policy", "policy " + BOB, "policy not a jid", "confirm", "confirm 1", "confirm nope", "confirm nope " + BOB,
    f"draft {BOB} Hello there", f"draft {BOB} at 09:00 Europe/Paris Good morning", "draft", f"draft {BOB}",
    f"remind {BOB} in 1h Call the dentist", "drafts", "send draft 1", "send draft 99", "postpone draft 1",
    "delete draft 1", "delete",
    f"list create friends {BOB}", "lists", "list", "list add friends carol@localhost", "list rename friends pals",
    "list send pals Party at eight!", "list status", "list status nope", "list recall nope", "list delete pals",
    "list frob",
    "phone", "phone +12025550143", "verify 123456", "verify",
    "stats", "held " + BOB, "release " + BOB,  # not an admin: forbidden
    "frobnicate",
]  # fmt: skip

# The admin commands (admin.jids), run again as an admin.
ADMIN_LINES = [
    "stats", "statistics", "held", "held " + BOB, "held bob.with.a.longer.name", "held @",
    "release", "release nope@", "release " + BOB,
]  # fmt: skip


async def _figures() -> dict[str, float]:
    return {"held": 2.0}


@pytest.fixture
async def ctx(tmp_path):
    store = await Store.open(pgserver.store_at(tmp_path / "c.sqlite"))
    pipeline = Pipeline(store, Recorder(), "localhost", default_undo_window=0.0)
    await pipeline.start()
    drafts = DraftService(store, pipeline, Notes())  # type: ignore[arg-type]
    lists = ListService(store, pipeline, "courier.localhost", "localhost", Limits(50, 20, 30))
    await lists.start()
    for n in (1, 2):  # two held messages for Bob, who is offline
        inner = ET.Element("{jabber:client}message", {"from": f"{ALICE}/phone", "to": BOB, "type": "chat"})
        inner.set("id", f"held-{n}-0123456789abcdef0123456789abcdef")
        ET.SubElement(inner, "{jabber:client}body").text = f"Message number {n}, long enough to be cut somewhere"
        pipeline.handoff(Handoff(f"h{n}", "offline", inner, time.time()))
    await store.flush()
    yield Context(ALICE, pipeline, drafts=drafts, lists=lists)
    drafts.stop()
    pipeline.stop()
    await store.close()


async def test_every_first_line_is_a_short_whole_sentence(ctx) -> None:
    bot = Bot(all_commands())
    seen, bad = set(), []
    for line in LINES:
        answer = await bot.answer(ctx, line)
        first = answer.splitlines()[0]
        starts = first[:1].isupper() or first[:1].isdigit() or first[:1] in "“+" or first.startswith(("bob", "alice"))
        if len(first) > FIRST_LINE or not starts or first.rstrip()[-1:] not in ".?!)”":
            bad.append((line, first))
        seen.add(line.split()[0])
    admin = dataclasses.replace(ctx, admin=True, domain="localhost", statistics=_figures)
    for line in ADMIN_LINES:
        first = (await bot.answer(admin, line)).splitlines()[0]
        starts = first[:1].isupper() or first[:1].isdigit() or first[:1] in "“+" or first.startswith(("bob", "alice"))
        if len(first) > FIRST_LINE or not starts or first.rstrip()[-1:] not in ".?!)”":
            bad.append((line, first))
        seen.add(line.split()[0])
    assert bad == [], "\n".join(f"{line!r}: {first!r}" for line, first in bad)
    words = {w.split()[0] for c in all_commands() for w in c.words}
    assert words <= seen, f"commands without a case here: {words - seen}"
