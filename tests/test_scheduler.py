"""The one scheduler (component/scheduler.py): keyed timers on wall-clock due times, waited
for on the monotonic clock, every job under one error boundary.

Real asyncio throughout; no sleep stands in for "it did not run": a later job (a positive
marker) or an event says when to look.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from component import scheduler as scheduler_module
from component.scheduler import Scheduler

WAIT = 5.0  # the longest any test waits for an event (it comes in milliseconds)


class Ran:
    """Jobs that note their name (and when) and set an event per name."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.at: dict[str, float] = {}
        self.events: dict[str, asyncio.Event] = {}

    def event(self, name: str) -> asyncio.Event:
        return self.events.setdefault(name, asyncio.Event())

    def job(self, name: str):  # type: ignore[no-untyped-def]
        def run() -> None:
            self.order.append(name)
            self.at[name] = time.time()
            self.event(name).set()

        return run

    async def until(self, name: str) -> None:
        await asyncio.wait_for(self.event(name).wait(), WAIT)


@pytest.fixture
async def sched():  # type: ignore[no-untyped-def]
    s = Scheduler()
    yield s
    await s.close()


async def test_past_due_times_run_at_once_in_their_order(sched: Scheduler) -> None:
    ran = Ran()
    now = time.time()
    sched.at(now - 1, ("t", "second"), ran.job("second"))
    sched.at(now - 2, ("t", "first"), ran.job("first"))
    sched.at(now - 0.5, ("t", "third"), ran.job("third"))
    await ran.until("third")
    assert ran.order == ["first", "second", "third"]


async def test_a_job_never_runs_before_its_wall_clock_time(sched: Scheduler) -> None:
    ran = Ran()
    when = time.time() + 0.15
    sched.at(when, ("t", "later"), ran.job("later"))
    assert sched.due(("t", "later")) == when
    await ran.until("later")
    assert ran.at["later"] >= when
    assert sched.due(("t", "later")) is None  # rung: no timer left


async def test_cancel_and_replace_a_key(sched: Scheduler) -> None:
    ran = Ran()
    now = time.time()
    sched.at(now + 0.02, ("t", "cancelled"), ran.job("cancelled"))
    sched.at(now + 0.02, ("t", "moved"), ran.job("old job"))
    sched.at(now + 0.04, ("t", "moved"), ran.job("moved"))  # the key's one timer, replaced
    assert sched.cancel(("t", "cancelled"))
    assert not sched.cancel(("t", "cancelled"))  # gone already
    sched.at(now + 0.06, ("t", "marker"), ran.job("marker"))
    await ran.until("marker")
    assert ran.order == ["moved", "marker"]


async def test_earliest_keeps_an_earlier_timer_and_takes_a_sooner_one(sched: Scheduler) -> None:
    ran = Ran()
    now = time.time()
    sched.at(now + 3600, ("t", "k"), ran.job("k"))
    sched.at(now + 7200, ("t", "k"), ran.job("k"), earliest=True)
    assert sched.due(("t", "k")) == now + 3600  # the earlier one stays
    sched.at(now, ("t", "k"), ran.job("k"), earliest=True)
    assert sched.due(("t", "k")) == now  # a sooner one wins
    await ran.until("k")


async def test_cancel_group_drops_one_features_timers(sched: Scheduler) -> None:
    ran = Ran()
    now = time.time()
    for seq in range(3):
        sched.at(now + 0.02, ("release", seq), ran.job(f"release {seq}"))
    sched.at(now + 0.02, ("drafts",), ran.job("drafts"))
    sched.cancel_group("release")
    sched.at(now + 0.04, ("t", "marker"), ran.job("marker"))
    await ran.until("marker")
    assert ran.order == ["drafts", "marker"]


async def test_a_failing_job_is_logged_by_name_and_the_scheduler_goes_on(
    sched: Scheduler, caplog: pytest.LogCaptureFixture
) -> None:
    ran = Ran()

    def broken() -> None:
        raise RuntimeError("disk on fire")

    async def broken_later() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("still on fire")

    now = time.time()
    with caplog.at_level(logging.ERROR, "component.scheduler"):
        sched.at(now, ("sms", "outbox"), broken)
        sched.at(now, ("drafts",), broken_later)
        sched.at(now + 0.02, ("t", "after"), ran.job("after"))
        await ran.until("after")
        await sched.wait(("drafts",))
    assert "sms outbox failed" in caplog.text and "disk on fire" in caplog.text
    assert "drafts failed" in caplog.text and "still on fire" in caplog.text
    assert ran.order == ["after"]


async def test_a_failing_job_with_retry_runs_again_after_a_back_off(
    sched: Scheduler, caplog: pytest.LogCaptureFixture
) -> None:
    attempts: list[float] = []
    done = asyncio.Event()

    async def flaky() -> None:
        attempts.append(time.time())
        if len(attempts) < 3:
            raise OSError("gateway down")
        done.set()

    sched.soon(("sms", "outbox"), flaky, retry=0.02)
    await asyncio.wait_for(done.wait(), WAIT)
    assert len(attempts) == 3
    assert attempts[1] - attempts[0] >= 0.02 and attempts[2] - attempts[1] >= 0.04  # doubling
    assert "sms outbox failed; trying again in 0.0 s" in caplog.text  # 0.02 s, as %.1f
    assert sched.due(("sms", "outbox")) is None  # succeeded: not retried again


async def test_a_key_runs_one_job_at_a_time_and_once_more_if_due_meanwhile(sched: Scheduler) -> None:
    gate, entered = asyncio.Event(), asyncio.Event()
    runs: list[int] = []
    second = asyncio.Event()

    async def round_() -> None:
        runs.append(len(runs) + 1)
        if len(runs) == 1:
            entered.set()
            await gate.wait()
        else:
            second.set()

    sched.soon(("drafts",), round_)
    await asyncio.wait_for(entered.wait(), WAIT)
    sched.soon(("drafts",), round_)  # due again while the first run waits
    sched.soon(("drafts",), round_)  # (one more run, not two)
    marker = asyncio.Event()
    sched.soon(("t", "marker"), marker.set)
    await asyncio.wait_for(marker.wait(), WAIT)  # the scheduler rang meanwhile…
    assert runs == [1] and sched.running(("drafts",))  # …and did not start a second run
    gate.set()
    await asyncio.wait_for(second.wait(), WAIT)
    await sched.wait(("drafts",))
    assert runs == [1, 2]


async def test_every_repeats_retries_a_failure_and_ends(sched: Scheduler, caplog: pytest.LogCaptureFixture) -> None:
    runs: list[str] = []
    third = asyncio.Event()

    async def purge() -> None:
        runs.append("run")
        if len(runs) == 2:
            raise OSError("database is locked")
        if len(runs) == 3:
            third.set()

    sched.every(0.01, ("retention",), purge)
    await asyncio.wait_for(third.wait(), WAIT)
    assert "retention failed; trying again in 0.5 s" in caplog.text
    await sched.end(("retention",))
    assert sched.due(("retention",)) is None
    marker = asyncio.Event()
    sched.at(time.time() + 0.05, ("t", "marker"), marker.set)
    await asyncio.wait_for(marker.wait(), WAIT)
    assert len(runs) == 3  # ended: it did not run again


async def test_end_cancels_a_running_job_and_its_rearming(sched: Scheduler) -> None:
    entered = asyncio.Event()

    async def forever() -> None:
        sched.at(time.time(), ("sms", "outbox"), forever)  # a round sets the next one first
        entered.set()
        await asyncio.Event().wait()

    sched.soon(("sms", "outbox"), forever)
    await asyncio.wait_for(entered.wait(), WAIT)
    await sched.end(("sms", "outbox"))
    assert not sched.running(("sms", "outbox")) and sched.due(("sms", "outbox")) is None


async def test_a_wall_clock_step_forward_is_seen_within_max_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """Due times are wall-clock instants, waited for on the monotonic clock: after a step of the
    wall clock (NTP, a resumed laptop) a job runs once the scheduler looks again (MAX_WAIT)."""
    monkeypatch.setattr(scheduler_module, "MAX_WAIT", 0.05)
    offset = [0.0]
    sched = Scheduler(clock=lambda: time.time() + offset[0])
    ran = Ran()
    started = time.monotonic()
    sched.at(time.time() + 3600, ("drafts",), ran.job("in an hour"))
    offset[0] = 3600.0  # the wall clock jumps an hour ahead; the monotonic clock does not
    await ran.until("in an hour")
    assert time.monotonic() - started < WAIT
    await sched.close()


async def test_a_wall_clock_step_back_runs_nothing_early(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scheduler_module, "MAX_WAIT", 0.02)
    offset = [0.0]
    sched = Scheduler(clock=lambda: time.time() + offset[0])
    ran = Ran()
    sched.at(time.time() + 0.1, ("drafts",), ran.job("soon"))
    offset[0] = -3600.0  # an hour back: "soon" is an hour and a bit away now
    marker = asyncio.Event()
    other = Scheduler()
    other.at(time.time() + 0.3, ("t", "marker"), marker.set)  # past the monotonic 0.1 s
    await asyncio.wait_for(marker.wait(), WAIT)
    assert ran.order == []
    offset[0] = 0.0
    await ran.until("soon")
    await sched.close()
    await other.close()


async def test_stop_rings_no_more(sched: Scheduler) -> None:
    ran = Ran()
    sched.at(time.time() + 0.02, ("t", "never"), ran.job("never"))
    sched.stop()
    sched.at(time.time(), ("t", "after stop"), ran.job("after stop"))
    assert sched.due(("t", "never")) is None and sched.due(("t", "after stop")) is None
    other = Scheduler()  # a marker on another scheduler, later than both
    marker = asyncio.Event()
    other.at(time.time() + 0.05, ("t", "marker"), marker.set)
    await asyncio.wait_for(marker.wait(), WAIT)
    await other.close()
    assert ran.order == []
