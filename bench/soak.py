"""Soak (issue #12): a long bounded run of mixed traffic with Courier's RSS sampled from /proc.

    python -m bench.soak [--messages N] [--round R] [--sample-seconds S] [--flat-percent X] [--warm-up W]
                         [--bot-commands B] [--max-seconds T] [--keep]

One stack: Prosody with ``mod_courier_route`` and a real Courier process (log
level INFO).  Traffic goes in rounds of R messages until N messages were sent
(retractions count), every message asking for courier-hops reports
(``<request xmlns='https://courier.chat/ns/hops/0'/>``):

* 60 % **online**: a burst to a recipient who is logged in;
* 30 % **held**: a burst to a recipient who is offline; Courier holds them;
  then the recipient logs in, gets them (the flush), and logs out again;
* 10 % **recalled**: messages to a recipient who stays offline, each followed
  by its XEP-0424 retraction: Courier recalls the held message.  At the end a
  marker message goes to that recipient, who logs in: the marker must be the
  only message it gets (no recalled message ever arrives).

Users rotate before an archive reaches Prosody's internal MAM cap.  A
background task samples Courier's VmRSS every S seconds.  RSS is **flat**
(PASS) when, of the samples taken after the warm-up, the median of the last
quarter is within X % (default 10) of the median of the first quarter.  The
warm-up is the first quarter of the run or ``--warm-up`` seconds, whichever is
longer (default 300 s: Courier de-duplicates hand-offs by the ids of the last
300 s, ``HID_MEMORY``, so its RSS follows that window's message rate and grows
until the window is full).  Every online and held message must arrive exactly once and in
order, and no fallback delivery may happen.  Then, if B > 0, one user sends B
bot commands (``pending``; B/50 windows of 50 outstanding, each answered) and
the RSS before and after is printed (issue #12 saw +15 MB for 5,000).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from component import prosody
from component.delivery.pipeline import HID_MEMORY

from .common import (
    PASSWORD,
    BenchClient,
    BenchFailure,
    add_gc_option,
    body_for,
    exit_on_sigterm,
    failed_run,
    free_ports,
    machine_line,
    rss_mb,
    stanza_for,
    use_gc_option,
    verdict,
    verify,
)
from .stacks import Stack

DOMAIN = "localhost"
NS_HOPS = "https://courier.chat/ns/hops/0"
NS_RETRACT = "urn:xmpp:message-retract:1"
ARCHIVE_BUDGET = 8000  # messages per user before it is replaced (Prosody's internal MAM caps at 10,000)
SHARES = (("online", 0.6), ("held", 0.3), ("recalled", 0.1))


def with_reports(line: str) -> str:
    return line.replace("</message>", f"<request xmlns='{NS_HOPS}'/></message>")


def retraction(to: str, tag: str, i: int) -> str:
    return (
        f"<message to='{to}' type='chat' id='{tag}-x{i}'><retract xmlns='{NS_RETRACT}' id='{tag}-{i}'/>"
        f"<body>(retracted)</body></message>"
    )


class CountingClient(BenchClient):
    """:class:`BenchClient` that also counts the chat answers of Courier's bot."""

    def __init__(self, jid: str, password: str, port: int) -> None:
        super().__init__(jid, password, port)
        self.bot_answers = 0
        self.add_filter("in", self._count_bot)

    def _count_bot(self, stanza: Any) -> Any:
        xml = stanza.xml
        if xml.tag == "{jabber:client}message" and xml.get("from", "").startswith(f"courier.{DOMAIN}"):
            if xml.find("{jabber:client}body") is not None and xml.get("type") == "chat":
                self.bot_answers += 1
                return None
        return stanza


class Users:
    """Per category, the current (sender, recipient) pair; replaced when its archive budget is spent."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.next = 0
        self.current: dict[str, tuple[int, int]] = {}  # category -> (pair number, messages sent)

    def register(self, k: int) -> None:
        for who in ("s", "r"):
            prosody.adduser(self.stack.setup, f"{who}{k}@{DOMAIN}", PASSWORD)

    def take(self, category: str, count: int) -> tuple[int, bool]:
        """The pair number for *count* more messages of *category*, and whether it is new."""
        k, used = self.current.get(category, (-1, ARCHIVE_BUDGET))
        fresh = used + count > ARCHIVE_BUDGET
        if fresh:
            k, used = self.next, 0
            self.next += 1
            self.register(k)
        self.current[category] = (k, used + count)
        return k, fresh


async def client(stack: Stack, jid: str) -> CountingClient:
    c = CountingClient(jid, PASSWORD, stack.setup.c2s_port)
    stack.clients.append(c)
    await c.start()
    return c


async def sample_rss(pid: int, every: float, samples: list[tuple[float, float]], stop: asyncio.Event) -> None:
    t0 = time.monotonic()
    while not stop.is_set():
        samples.append((time.monotonic() - t0, rss_mb(pid)))
        try:
            await asyncio.wait_for(stop.wait(), every)
        except TimeoutError:
            pass


async def burst(sender: BenchClient, recipient: BenchClient, lines: list[str], expected: list[str], what: str) -> None:
    recipient.arrivals.clear()
    recipient.expect(len(expected))
    for line in lines:
        sender.send_raw(line)
    await recipient.wait_target(30, what)


async def traffic(args: argparse.Namespace, stack: Stack, phase: list[str]) -> dict[str, int]:
    users = Users(stack)
    sent = {name: 0 for name, _ in SHARES}
    online: tuple[CountingClient, CountingClient] | None = None
    held_s: CountingClient | None = None
    recall_s: CountingClient | None = None
    rnd = 0
    total = 0
    t0 = time.monotonic()
    while total < args.messages:
        rnd += 1
        phase[0] = f"round {rnd} ({total} of {args.messages} sent)"
        for name, share in SHARES:
            count = max(1, int(args.round * share))
            if name == "recalled":
                count = max(1, count // 2)  # a message and its retraction
            previous = users.current.get(name, (-1, 0))[0]
            k, fresh = users.take(name, count * (2 if name == "recalled" else 1))
            tag = f"{name[0]}{rnd}"
            lines = [with_reports(stanza_for(f"r{k}@{DOMAIN}", tag, i)) for i in range(count)]
            expected = [body_for(tag, i) for i in range(count)]
            if name == "online":
                if fresh:
                    if online is not None:
                        for c in online:
                            await c.stop()
                    online = (await client(stack, f"s{k}@{DOMAIN}/soak"), await client(stack, f"r{k}@{DOMAIN}/soak"))
                assert online is not None
                await burst(online[0], online[1], lines, expected, f"{tag} online")
                verify([b for _, b in online[1].arrivals], expected, f"{tag} online")
            elif name == "held":
                if fresh:
                    if held_s is not None:
                        await held_s.stop()
                    held_s = await client(stack, f"s{k}@{DOMAIN}/soak")
                assert held_s is not None
                for line in lines:
                    held_s.send_raw(line)
                # a ping round trip: the server handles one stream in order, so every message has been handed off
                await held_s.plugin["xep_0199"].ping(jid=DOMAIN, timeout=30)
                recipient = CountingClient(f"r{k}@{DOMAIN}/soak", PASSWORD, stack.setup.c2s_port)
                stack.clients.append(recipient)
                recipient.expect(count)
                await recipient.start()  # its initial presence: Courier flushes what it held
                await recipient.wait_target(30, f"{tag} held flush")
                verify([b for _, b in recipient.arrivals], expected, f"{tag} held")
                await recipient.stop()
            else:
                if fresh:
                    if recall_s is not None:
                        await finish_recalled(stack, recall_s, previous, rnd)
                    recall_s = await client(stack, f"s{k}@{DOMAIN}/soak")
                assert recall_s is not None
                for i, line in enumerate(lines):
                    recall_s.send_raw(line)
                    recall_s.send_raw(retraction(f"r{k}@{DOMAIN}", tag, i))
                count *= 2
            sent[name] += count
            total += count
        stack.check_alive()
        if rnd % 5 == 0:
            print(f"  after {total} messages, {time.monotonic() - t0:.0f}s: Courier RSS "
                  f"{rss_mb(stack.pids()['courier']):.1f} MB", flush=True)  # fmt: skip
    if recall_s is not None:
        await finish_recalled(stack, recall_s, users.current["recalled"][0], rnd)
    for c in online or ():
        await c.stop()
    if held_s is not None:
        await held_s.stop()
    sent["total"] = total
    sent["pairs"] = users.next
    return sent


async def finish_recalled(stack: Stack, sender: CountingClient, k: int, rnd: int) -> None:
    """A marker to r<k>, who logs in: the marker must be all it gets (every other message was recalled)."""
    sender.send_raw(stanza_for(f"r{k}@{DOMAIN}", f"mark{rnd}", 0))
    await sender.plugin["xep_0199"].ping(jid=DOMAIN, timeout=30)
    recipient = CountingClient(f"r{k}@{DOMAIN}/soak", PASSWORD, stack.setup.c2s_port)
    stack.clients.append(recipient)
    recipient.expect(1)
    await recipient.start()
    await recipient.wait_target(30, f"r{k} marker")
    verify([b for _, b in recipient.arrivals], [body_for(f"mark{rnd}", 0)], f"r{k}: recalled messages")
    await recipient.stop()
    await sender.stop()


async def bot_commands(stack: Stack, count: int) -> float:
    """*count* bot commands from one user, 50 outstanding at a time; seconds taken."""
    prosody.adduser(stack.setup, f"bot-user@{DOMAIN}", PASSWORD)
    user = await client(stack, f"bot-user@{DOMAIN}/bot")
    started = time.perf_counter()
    done = 0
    while done < count:
        window = min(50, count - done)
        for _ in range(window):
            user.send_raw(f"<message to='courier.{DOMAIN}' type='chat'><body>pending</body></message>")
        done += window
        deadline = time.monotonic() + 30
        while user.bot_answers < done:
            if time.monotonic() > deadline:
                raise BenchFailure(f"bot: {user.bot_answers} answers for {done} commands after 30s")
            await asyncio.sleep(0.005)
    await user.stop()
    return time.perf_counter() - started


def flatness(samples: list[tuple[float, float]], limit: float, warm_up: float) -> tuple[bool, str]:
    """Flat: the median RSS of the last quarter of the samples taken after the warm-up is within
    *limit* % of the median of their first quarter.  The warm-up is the first quarter of the run or
    *warm_up* seconds, whichever is longer: Courier's hand-off index keeps the ids of the last
    ``HID_MEMORY`` seconds by design, so RSS follows the message rate of that window and may grow
    until the window is full."""
    start = max(warm_up, samples[-1][0] / 4)
    steady = [r for t, r in samples if t >= start]
    q = len(steady) // 4
    if q < 2:
        return False, (
            f"too few samples after the {start:.0f} s warm-up ({len(steady)}): run longer "
            "(more --messages) or sample more often"
        )
    first, last = statistics.median(steady[:q]), statistics.median(steady[-q:])
    change = (last - first) / first * 100
    return abs(change) <= limit, (
        f"after the {start:.0f} s warm-up, median RSS first quarter {first:.1f} MB, last quarter {last:.1f} MB: "
        f"{change:+.1f} % (limit ±{limit:g} %)"
    )


async def measure(args: argparse.Namespace, stack: Stack, phase: list[str]) -> list[str]:
    pid = stack.pids()["courier"]
    samples: list[tuple[float, float]] = []
    stop = asyncio.Event()
    sampler = asyncio.ensure_future(sample_rss(pid, args.sample_seconds, samples, stop))
    started = time.perf_counter()
    rss_start = rss_mb(pid)
    sent = await traffic(args, stack, phase)
    took = time.perf_counter() - started
    stop.set()
    await sampler
    samples.append((took, rss_mb(pid)))
    rss = [r for _, r in samples]
    flat, how = flatness(samples, args.flat_percent, args.warm_up)
    out = [
        "",
        f"Soak (issue #12): {sent['total']} messages in {took:.0f}s ({sent['total'] / took:.0f} msg/s): "
        + ", ".join(f"{sent[name]} {name}" for name, _ in SHARES)
        + f"; every message asked for hop reports; {sent['pairs']} user pairs",
        f"Courier RSS: {rss_start:.1f} MB at the start, {rss[-1]:.1f} MB at the end, max {max(rss):.1f} MB; "
        f"{len(rss)} samples every {args.sample_seconds:g}s",
        f"RSS flat: {how}   {verdict(flat)}",
        "  samples (s: MB): " + ", ".join(f"{t:.0f}: {r:.1f}" for t, r in samples[:: max(1, len(samples) // 12)]),
        "Checks: every online and held message arrived exactly once and in order; no recalled message arrived.",
    ]
    if args.bot_commands:
        phase[0] = "bot commands"
        before = rss_mb(pid)
        seconds = await bot_commands(stack, args.bot_commands)
        after = rss_mb(pid)
        out.append(
            f"Bot: {args.bot_commands} commands ('pending') in {seconds:.1f}s, each answered; Courier RSS "
            f"{before:.1f} -> {after:.1f} MB ({after - before:+.1f} MB)"
        )
    await asyncio.sleep(0.2)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--messages", type=int, default=300000, help="messages in all, retractions included (default 300000)"
    )
    p.add_argument("--round", type=int, default=2000, help="messages per round (default 2000)")
    p.add_argument("--sample-seconds", type=float, default=2.0, help="RSS sampling interval (default 2)")
    p.add_argument("--flat-percent", type=float, default=10.0, help="flatness limit in %% (default 10)")
    p.add_argument(
        "--warm-up",
        type=float,
        default=HID_MEMORY,
        help="seconds left out of the flatness check, at least (default: the hand-off index's window, %(default)g)",
    )
    p.add_argument("--bot-commands", type=int, default=5000, help="bot commands after the soak (0: none)")
    p.add_argument("--max-seconds", type=float, default=1800, help="abort the whole run after this long")
    p.add_argument("--keep", action="store_true", help="keep the work dir (configs, logs, Courier's store)")
    add_gc_option(p)
    args = p.parse_args(argv)
    use_gc_option(args)
    if args.messages < 1 or args.round < 10:
        p.error("--messages must be at least 1 and --round at least 10")
    exit_on_sigterm()
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="courier-soak-"))
    print(f"courier bench (soak); work dir {root}\n{machine_line()}", flush=True)
    # the bot's user may send as fast as the benchmark does (the rate limit is tested elsewhere)
    stack = Stack("Courier", True, root, 0, courier_env={"COURIER_REQUESTS_PER_SECOND": "100000",
                                                         "COURIER_REQUESTS_BURST": "100000"})  # fmt: skip
    phase = ["starting the stack"]
    try:
        ports = free_ports(2)
        stack.start((ports[0], ports[1]))
        remaining = args.max_seconds - (time.monotonic() - started)
        lines = asyncio.run(asyncio.wait_for(measure(args, stack, phase), remaining))
        stack.stop()
        reasons = stack.fallbacks()
        fb = sum(reasons.values())
        lines.append(f"Prosody's fallback deliveries: {fb}  {verdict(fb == 0)}" + (" <-- FAILED RUN" if fb else ""))
        lines.append(f"Total run time {time.monotonic() - started:.0f}s.")
        print("\n".join(lines), flush=True)
        return 1 if fb else 0
    except (TimeoutError, BenchFailure) as exc:
        return failed_run(exc, args, root, phase[0])
    finally:
        stack.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
