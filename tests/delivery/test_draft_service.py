"""The draft service without XMPP: time syntax, bot syntax, the one timer, late
firing at start-up and the repair of a send interrupted by a crash.

A real store on a throw-away database; a fake pipeline that records what it is
asked to originate."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from component.commands import CommandError
from component.commands.drafts import MyDrafts, NewDraft
from component.delivery.drafts import (
    DraftInvalid,
    DraftLimit,
    DraftNotFound,
    DraftService,
    DraftTooLate,
    Limits,
    Trigger,
    format_time,
    parse_duration,
    parse_when,
    take_time,
)
from component.delivery.states import State
from component.scheduler import Scheduler
from component.store import MessageRow, Store
from component.store.drafts import DraftRow
from tests import pgserver

JULIET = "juliet@shakespeare.lit"
ROMEO = "romeo@shakespeare.lit"
NURSE = "nurse@shakespeare.lit"
# 2026-11-23 21:14:05 UTC, a Monday evening
NOW = datetime(2026, 11, 23, 21, 14, 5, tzinfo=UTC).timestamp()


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()  # type: ignore[misc]


# -- time syntax ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "zone"),
    [
        ("09:00", utc(2026, 11, 24, 9, 0), "UTC"),  # passed today: tomorrow's
        ("at 22:30", utc(2026, 11, 23, 22, 30), "UTC"),  # still ahead today
        ("09:00 Europe/Paris", utc(2026, 11, 24, 8, 0), "Europe/Paris"),
        ("tomorrow 18:30 +02:00", utc(2026, 11, 24, 16, 30), "+02:00"),
        ("today 23:00 UTC", utc(2026, 11, 23, 23, 0), "UTC"),
        ("2026-11-24T09:00+01:00", utc(2026, 11, 24, 8, 0), "+01:00"),
        ("2026-11-24T09:00:00Z", utc(2026, 11, 24, 9, 0), "UTC"),
        ("2026-11-24 09:00 America/New_York", utc(2026, 11, 24, 14, 0), "America/New_York"),
        ("2026-07-01 09:00 Europe/Paris", utc(2026, 7, 1, 7, 0), "Europe/Paris"),  # summer time
        ("in 10m", NOW + 600, "UTC"),
        ("in 2h30m", NOW + 9000, "UTC"),
        ("in 1d", NOW + 86400, "UTC"),
        ("90s", NOW + 90, "UTC"),
    ],
)
def test_time_expressions(text: str, expected: float, zone: str) -> None:
    assert parse_when(text, NOW) == (expected, zone)


@pytest.mark.parametrize("text", ["25:00", "soon", "in ages", "tomorrow", "today 2026-11-24 09:00", "09:00 Mars/Base"])
def test_bad_time_expressions_explain_the_syntax(text: str) -> None:
    with pytest.raises(DraftInvalid) as err:
        parse_when(text, NOW)
    assert "in 10m" in str(err.value)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("in 99999999d", DraftLimit),  # year 275817: was ValueError while formatting the error
        ("in 99999999999999999999999d", DraftLimit),
        ("at 9999-12-31T23:59:59-14:00", DraftLimit),  # after 9999 once in UTC
        ("at 0001-01-01T00:00+14:00", DraftInvalid),  # before the year 1 once in UTC
        ("at 2026-02-30 10:00", DraftInvalid),
        ("at 10000-01-01 10:00", DraftInvalid),
    ],
)
async def test_every_bad_time_gets_a_sentence_not_a_crash(store: Store, text: str, error: type) -> None:
    service, _, _ = service_for(store)
    await service.start()
    with pytest.raises(error) as err:
        instant, zone = parse_when(text, time.time())
        await service.create(JULIET, ROMEO, "hi", Trigger("at", instant, zone))
    message = str(err.value)
    assert message.endswith((".", "allowed.")) and "Traceback" not in message
    if error is DraftLimit:
        assert "is too far ahead" in message and "after the year 9999" in message
    service.stop()


def test_take_time_stops_where_the_text_begins() -> None:
    assert take_time(["09:00", "Europe/Paris", "Good", "morning"], NOW)[2] == 2
    assert take_time(["09:00", "Good", "morning"], NOW)[2] == 1
    assert take_time(["tomorrow", "09:00", "UTC", "Hi"], NOW)[2] == 3
    assert take_time(["2026-11-24T09:00Z", "Hi"], NOW)[2] == 1
    assert parse_duration("1h30m") == 5400 and parse_duration("hello") is None


def test_times_are_shown_in_their_zone_and_in_utc() -> None:
    assert format_time(utc(2026, 11, 24, 8, 0), "Europe/Paris") == "2026-11-24 09:00 Europe/Paris (08:00 UTC)"
    assert format_time(utc(2026, 11, 24, 8, 0, 30), "") == "2026-11-24 08:00:30 UTC"


# -- bot syntax ----------------------------------------------------------------------------


def test_bot_draft_syntax() -> None:
    new = NewDraft()
    assert new.parse("draft", f"{ROMEO} at 09:00 Europe/Paris Good morning!\nLine two") == {
        "to": ROMEO, "action": "send", "trigger": "at", "when": "at 09:00 Europe/Paris",
        "text": "Good morning!\nLine two",
    }  # fmt: skip
    assert new.parse("remind", f"{ROMEO} in 10m Call him")["when"] == "in 10m"
    assert new.parse("remind", f"{ROMEO} in 10m Call him")["action"] == "remind"
    assert new.parse("draft", f"{ROMEO} when-online Hello")["trigger"] == "target-online"
    assert new.parse("draft", f"{ROMEO} when-from {NURSE} Hello") == {
        "to": ROMEO, "action": "send", "trigger": "message-from", "from": NURSE, "text": "Hello",
    }  # fmt: skip
    assert new.parse("draft", f"{ROMEO} in the morning we go")["text"] == "in the morning we go"  # not a duration
    assert new.parse("draft", f"{ROMEO} at last, my love")["trigger"] == "manual"  # not a time
    assert new.parse("draft", "3 A better text") == {"edit": "3", "text": "A better text"}
    assert new.parse("draft", "3@shakespeare.lit Hi")["to"] == "3@shakespeare.lit"  # a JID, not a number
    for bad in ("", ROMEO, f"{ROMEO} when-from", "3", f"{ROMEO} at 26:00 Hi"):
        with pytest.raises(CommandError):
            new.parse("draft", bad)
    mine = MyDrafts()
    assert mine.parse("drafts", "") == {}
    assert mine.parse("send", "draft 3") == {"draft": "3", "action": "send"}
    assert mine.parse("delete", "#4") == {"draft": "4", "action": "delete"}
    assert mine.parse("postpone", "draft 3 at 18:00 Europe/Paris") == {
        "draft": "3", "action": "postpone", "when": "at 18:00 Europe/Paris",
    }  # fmt: skip
    for word, bad in (("send", "draft"), ("postpone", "draft 3")):
        with pytest.raises(CommandError):
            mine.parse(word, bad)


# -- the service --------------------------------------------------------------------------


class FakePipeline:
    """What the service needs of the pipeline; originated messages are stored for real."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.domain = "shakespeare.lit"
        self.available_observers: list[Any] = []
        self.resource_observers: list[Any] = []
        self.message_observers: list[Any] = []
        self.sent: list[tuple[str, str, str, str]] = []
        self.seq = 0
        self.online_users: set[str] = set()
        self.scheduler = Scheduler()

    def online(self, bare: str) -> bool:
        return bare in self.online_users

    async def originate(self, sender: str, recipient: str, body: str, *, msg_id: str, note: str) -> MessageRow:
        self.seq = max(self.seq, await self.store.max_seq()) + 1
        self.sent.append((sender, recipient, body, note))
        now = time.time()
        row = MessageRow(
            self.seq, None, sender, "courier", recipient, recipient, msg_id, msg_id, "message", body,
            f"<message xmlns='jabber:client' id='{msg_id}'/>", State.HELD, "recipient-offline", None, now, now,
        )  # fmt: skip
        self.store.queue_message(row)
        await self.store.flush()
        return row


class FakeNotifier:
    def __init__(self) -> None:
        self.reminders: list[DraftRow] = []
        self.sent: list[tuple[DraftRow, str]] = []
        self.notices: list[tuple[str, int]] = []

    def reminder(self, draft: DraftRow) -> None:
        self.reminders.append(draft)

    def fired(self, draft: DraftRow, how: str) -> None:
        self.sent.append((draft, how))

    def pending(self, device: str, drafts: list[DraftRow]) -> None:
        self.notices.append((device, len(drafts)))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(pgserver.store_at(tmp_path / "courier.sqlite"))
    try:
        yield s
    finally:
        await s.close()


async def until(check: Callable[[], object], timeout: float = 5.0) -> None:
    """Wait for a state (never a fixed time)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def service_for(store: Store, **limits: Any) -> tuple[DraftService, FakePipeline, FakeNotifier]:
    pipeline = FakePipeline(store)
    notifier = FakeNotifier()
    service = DraftService(store, pipeline, notifier, Limits(**limits))  # type: ignore[arg-type]
    return service, pipeline, notifier


async def test_one_timer_for_many_drafts(store: Store) -> None:
    service, pipeline, _ = service_for(store, max_pending=1000)
    await service.start()
    now = time.time()
    for i in range(200):
        await service.create(JULIET, ROMEO, f"later {i}", Trigger("at", now + 3600 + i))
    soon = await service.create(JULIET, ROMEO, "soon", Trigger("at", now + 0.3))
    assert service.timer_due == soon.due_at  # one timer, for the earliest draft
    await until(lambda: pipeline.sent)  # the timer rang (after 0.3 s)
    await service.drain()
    assert [s[2] for s in pipeline.sent] == ["soon"]
    assert service.timer_due == now + 3600  # re-armed for the next one
    service.stop()


async def test_overdue_at_start_up_fires_once_and_late(store: Store) -> None:
    await store.drafts.insert(
        JULIET, ROMEO, "missed", "send", "at", due_at=time.time() - 30, tz="UTC", trigger_jid="", msg_id="m-late",
        now=time.time() - 100, max_pending=10,
    )  # fmt: skip
    await store.drafts.insert(
        JULIET, NURSE, "missed reminder", "remind", "at", due_at=time.time() - 30, tz="UTC", trigger_jid="",
        msg_id="m-late-2", now=time.time() - 100, max_pending=10,
    )  # fmt: skip
    service, pipeline, notifier = service_for(store)
    await service.start()
    await until(lambda: pipeline.sent and notifier.reminders)  # the timer, armed for what is overdue, rang
    await service.drain()
    assert [(s[2], "late" in s[3]) for s in pipeline.sent] == [("missed", True)]
    ((fired, _how),) = notifier.sent
    assert fired.late >= 29
    assert [r.body for r in notifier.reminders] == ["missed reminder"]
    service.stop()
    again, pipeline2, _ = service_for(store)  # a second start fires nothing more
    await again.start()
    assert again.timer_due is None  # nothing is due any more: no timer to wait for
    await again.drain()
    assert pipeline2.sent == []
    again.stop()


async def test_a_failing_round_of_the_timer_is_retried(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    """The store failing once when the drafts' timer rings: logged, and the draft still goes
    after the scheduler's back-off (it used to wait for the next draft to be stored)."""
    service, pipeline, _ = service_for(store)
    real_claim, failures = store.drafts.claim_due, []

    async def claim_once_broken(now: float, limit: int = 100) -> list[DraftRow]:
        if not failures:
            failures.append(now)
            raise OSError("disk I/O error")
        return await real_claim(now, limit)

    store.drafts.claim_due = claim_once_broken  # type: ignore[method-assign]
    await service.start()
    await service.create(JULIET, ROMEO, "despite it all", Trigger("at", time.time() + 0.05))
    await until(lambda: pipeline.sent)
    await service.drain()
    assert failures and [s[2] for s in pipeline.sent] == ["despite it all"]
    assert "drafts failed; trying again in 1.0 s" in caplog.text
    service.stop()


async def test_a_send_interrupted_by_a_crash_is_finished_exactly_once(store: Store) -> None:
    service, pipeline, _ = service_for(store)
    a = await service.create(JULIET, ROMEO, "was stored", Trigger())
    b = await service.create(JULIET, ROMEO, "was not", Trigger())
    # the crash: both claimed, only a's message reached the store
    await store.drafts.claim_manual(JULIET, a.number, time.time())
    await store.drafts.claim_manual(JULIET, b.number, time.time())
    await pipeline.originate(JULIET, ROMEO, a.body, msg_id=a.msg_id, note="before the crash")
    restarted, pipeline2, _ = service_for(store)
    await restarted.start()
    assert [s[2] for s in pipeline2.sent] == ["was not"]
    assert await store.drafts.firing() == []
    assert (await restarted.get(JULIET, a.number)).state == "sent"
    restarted.stop()


async def test_a_reminder_claimed_before_a_crash_is_given_at_start_up(store: Store) -> None:
    for body, msg_id in (("claimed, then the crash", "m-r1"), ("reminded before the crash", "m-r2")):
        await store.drafts.insert(
            JULIET, NURSE, body, "remind", "at", due_at=time.time() - 30, tz="UTC", trigger_jid="",
            msg_id=msg_id, now=time.time() - 100, max_pending=10,
        )  # fmt: skip
    # the crash: both claimed by their time trigger; only the second one's reminder became durable
    claimed = await store.drafts.claim_due(time.time())
    assert [r.state for r in claimed] == ["reminding", "reminding"]
    service, _, notifier = service_for(store)
    await service._remind(claimed[1])
    assert [r.body for r in notifier.reminders] == ["reminded before the crash"]
    restarted, pipeline2, notifier2 = service_for(store)
    await restarted.start()
    await restarted.drain()
    assert [r.body for r in notifier2.reminders] == ["claimed, then the crash"]  # once, and only that one
    assert [r.state for r in notifier2.reminders] == ["pending"]  # what the reminder shows
    assert await store.drafts.reminding() == []
    pending = await store.drafts.pending(JULIET)
    assert sorted((d.body, d.trigger) for d in pending) == [
        ("claimed, then the crash", "manual"), ("reminded before the crash", "manual"),
    ]  # fmt: skip  (both wait to be sent by hand)
    assert pipeline2.sent == []
    restarted.stop()


async def test_operations_are_the_authors_only_and_pending_only(store: Store) -> None:
    service, pipeline, _ = service_for(store, max_pending=2, max_length=10, max_days_ahead=1)
    await service.start()
    row = await service.create(JULIET, ROMEO, "hello", Trigger())
    with pytest.raises(DraftNotFound):
        await service.fire(NURSE, row.number)
    with pytest.raises(DraftNotFound):
        await service.update(NURSE, row.number, body="mine now")
    with pytest.raises(DraftNotFound):
        await service.delete(JULIET, "x")
    with pytest.raises(DraftLimit):
        await service.create(JULIET, ROMEO, "far too long a text", Trigger())
    with pytest.raises(DraftLimit):
        await service.create(JULIET, ROMEO, "far", Trigger("at", time.time() + 2 * 86400))
    with pytest.raises(DraftInvalid):
        await service.create(JULIET, ROMEO, "past", Trigger("at", time.time() - 3600))
    with pytest.raises(DraftInvalid):
        await service.create(JULIET, "romeo@elsewhere.lit", "hi", Trigger("target-online"))
    with pytest.raises(DraftInvalid):
        await service.create(JULIET, ROMEO, "hi", Trigger("message-from", jid="verona.lit"))  # not a contact
    await service.create(JULIET, ROMEO, "second", Trigger())
    with pytest.raises(DraftLimit):
        await service.create(JULIET, ROMEO, "third", Trigger())
    await service.fire(JULIET, row.number)
    for attempt in (service.fire(JULIET, 1), service.delete(JULIET, 1), service.update(JULIET, 1, body="late")):
        with pytest.raises(DraftTooLate):
            await attempt
    assert [s[2] for s in pipeline.sent] == ["hello"]
    service.stop()


async def test_presence_and_message_triggers_through_the_observers(store: Store) -> None:
    service, pipeline, notifier = service_for(store)
    await service.start()
    await service.drain()  # the trigger sets are loaded
    await service.create(JULIET, ROMEO, "when romeo", Trigger("target-online"))
    await service.create(JULIET, ROMEO, "when the nurse", Trigger("message-from", jid=NURSE), "remind")
    for observer in pipeline.available_observers:
        observer(NURSE)  # somebody else
    for observer in pipeline.message_observers:
        observer(ROMEO, JULIET)  # somebody else writes
    await service.drain()
    assert pipeline.sent == [] and notifier.reminders == []
    for observer in pipeline.available_observers:
        observer(ROMEO)
    for observer in pipeline.message_observers:
        observer(NURSE, JULIET)
    await service.drain()
    assert [s[2] for s in pipeline.sent] == ["when romeo"]
    assert [r.body for r in notifier.reminders] == ["when the nurse"]
    for observer in pipeline.resource_observers:
        observer(f"{JULIET}/tablet")
        observer(f"{ROMEO}/orchard")
    await service.drain()
    assert notifier.notices == [(f"{JULIET}/tablet", 1)]  # the reminded draft still waits
    assert [r.number for r in service.known(JULIET) or []] == [2]
    service.stop()
