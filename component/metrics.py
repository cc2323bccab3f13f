"""Every metric Courier exposes, defined once (prometheus_client, OpenMetrics).

Counters and histograms are incremented by one-line hooks where things happen
(:func:`handoff`, :func:`hop`, :func:`fallbacks`…); gauges that describe the
present (held messages, queue depths, the connection) are read from the running
instance when ``/metrics`` is scraped (:func:`refresh`), so they can never drift.
The registry is Courier's own (not prometheus_client's global one): nothing but
these figures is exposed.  Served by :mod:`component.ops.http`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from .delivery.states import Event, Hop


class MessageRow(Protocol):
    """What the hooks read of a tracked message (store.MessageRow; not imported: the store imports us)."""

    created: float
    hold_reason: str

REGISTRY = CollectorRegistry(auto_describe=True)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400)

INFO = Info("courier", "Courier's version and component JID.", registry=REGISTRY)
CONNECTED = Gauge("courier_connected", "1 while the component connection to Prosody is up.", registry=REGISTRY)
ACTIVE = Gauge(
    "courier_active",
    "1 while this Courier is the active one of its component (always with SQLite; on PostgreSQL while it "
    "holds the lease); 0 while it is the standby.",
    registry=REGISTRY,
)
CONNECTS = Counter("courier_connects", "Component connections established (reconnects included).", registry=REGISTRY)
HANDOFFS = Counter("courier_handoffs", "Hand-offs received from mod_courier_route.", registry=REGISTRY)
ACKS = Counter("courier_acks", "Hand-offs acknowledged to the server (after the commit).", registry=REGISTRY)
FALLBACKS = Counter(
    "courier_fallbacks",
    "Hand-offs the server delivered itself. cause: held (Courier still held it), after_release (Courier's "
    "release came too late), unknown (never stored here: Courier was down or its commit failed).",
    ["cause"],
    registry=REGISTRY,
)
HELD = Gauge(
    "courier_held_messages",
    "Messages at Courier now. reason: recipient-offline, undo-window, or queued (behind an older one).",
    ["reason"],
    registry=REGISTRY,
)
RELEASES = Counter("courier_releases", "Messages released towards their recipient.", registry=REGISTRY)
RECALLS = Counter("courier_recalls", "Held messages recalled by their sender.", registry=REGISTRY)
EDITS = Counter("courier_edits", "Edits of messages (held: replaced; delivered: passed on).", registry=REGISTRY)
HOPS = Counter("courier_hops", "Hops recorded for tracked messages, by event.", ["event"], registry=REGISTRY)
RELEASE_LATENCY = Histogram(
    "courier_release_latency_seconds",
    "From acceptance to release, per released message (held messages included).",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
COMMIT_LATENCY = Histogram(
    "courier_store_commit_seconds",
    "Duration of one group commit of the store.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=REGISTRY,
)
COMMIT_FAILURES = Counter("courier_store_commit_failures", "Group commits that failed.", registry=REGISTRY)
WAL_CATCH_UPS = Histogram(
    "courier_store_wal_checkpoint_seconds",
    "A checkpoint the store's writer ran itself because SQLite's write-ahead log passed its limit.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=REGISTRY,
)
DRAFTS_PENDING = Gauge("courier_drafts_pending", "Drafts waiting for their trigger.", registry=REGISTRY)
DRAFTS_FIRED = Counter("courier_drafts_fired", "Drafts sent by their trigger (or by hand).", registry=REGISTRY)
FANOUT_COPIES = Counter("courier_fanout_copies", "Individual copies of broadcast-list messages.", registry=REGISTRY)
SMS_OUTBOX = Gauge(
    "courier_sms_outbox", "SMS waiting to be handed to the gateway (queued or sending).", registry=REGISTRY
)
SMS_SENT = Counter("courier_sms_sent", "SMS the gateway took (submitted).", registry=REGISTRY)
SMS_FAILED = Counter("courier_sms_failed", "SMS given up (the message is failed).", registry=REGISTRY)
RATE_LIMITED = Counter(
    "courier_rate_limited",
    "Requests refused by a per-user rate limit, by limit (e.g. commands, iq, fanouts, sms).",
    ["limit"],
    registry=REGISTRY,
)
ERRORS = Counter("courier_log_errors", "Log records at ERROR or above.", registry=REGISTRY)
STARTED = Gauge("courier_start_time_seconds", "When this Courier process started (POSIX time).", registry=REGISTRY)
STARTED.set(time.time())
for _reason in ("recipient-offline", "undo-window", "queued"):
    HELD.labels(_reason)
for _cause in ("held", "after_release", "unknown"):
    FALLBACKS.labels(_cause)
for _event in ("accepted", *(e.value for e in Event)):
    HOPS.labels(_event)


# -- hooks (one line at the place where it happens) ------------------------------------


def handoff() -> None:
    HANDOFFS.inc()


def ack() -> None:
    ACKS.inc()


def connected(up: bool) -> None:
    CONNECTED.set(1 if up else 0)
    if up:
        CONNECTS.inc()


_HOPS_BY_LABEL: dict[str, Any] = {}  # HOPS.labels(label), looked up once per label (per hop, it showed)


def hop(m: MessageRow, h: Hop) -> None:
    """A hop of *m* was recorded: count it, and time releases from acceptance."""
    counter = _HOPS_BY_LABEL.get(h.label)
    if counter is None:
        counter = _HOPS_BY_LABEL[h.label] = HOPS.labels(h.label)
    counter.inc()
    if h.label == "released":
        RELEASES.inc()
        RELEASE_LATENCY.observe(max(0.0, h.at - m.created))
    elif h.label == "recalled":
        RECALLS.inc()
    elif h.label == "edited":
        EDITS.inc()


def fallbacks(pipeline: Any, hids: Any) -> list[str]:
    """Count the server's fallback notice for *hids* by cause; returns the ids (a list)."""
    hids = list(hids)
    for hid in hids:
        known = pipeline.known_hids.get(hid)
        if known is None:
            cause = "unknown"
        else:
            m = pipeline.open.get(known[1])
            cause = "held" if m is not None and m.hid == hid else "after_release"
        FALLBACKS.labels(cause).inc()
    return hids


def commit(seconds: float, ok: bool) -> None:
    COMMIT_LATENCY.observe(seconds)
    if not ok:
        COMMIT_FAILURES.inc()


def wal_catch_up(seconds: float) -> None:
    WAL_CATCH_UPS.observe(seconds)


def sms_moved(state: str) -> None:
    """An outbox entry changed state (``submitted``, ``failed``…)."""
    if state == "submitted":
        SMS_SENT.inc()
    elif state == "failed":
        SMS_FAILED.inc()


def rate_limited(limit: str) -> None:
    """A request was refused by the per-user limit *limit* (for the rate limits of issue 12)."""
    RATE_LIMITED.labels(limit).inc()


# -- reading --------------------------------------------------------------------------


def held_now(messages: Iterable[MessageRow]) -> dict[str, int]:
    """Open *messages* by hold reason (``pipeline.open.values()``: all of them)."""
    counts = {"recipient-offline": 0, "undo-window": 0, "queued": 0}
    for m in messages:
        counts[m.hold_reason if m.hold_reason in counts else "queued"] += 1
    return counts


async def refresh(courier: Any) -> None:
    """Set the gauges from the running instance (before each scrape)."""
    for reason, n in held_now(courier.pipeline.open.values()).items():
        HELD.labels(reason).set(n)
    stats = await courier.store.stats.depths()
    DRAFTS_PENDING.set(stats["drafts_pending"])
    SMS_OUTBOX.set(stats["sms_outbox"])
    CONNECTED.set(1 if courier.is_connected() and courier._connected.is_set() else 0)


def value(name: str, **labels: str) -> float:
    """A sample's current value (0 if absent): for the statistics command."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def total(name: str) -> float:
    """The sum of every sample *name* over its labels."""
    return sum(s.value for family in REGISTRY.collect() for s in family.samples if s.name == name)


async def statistics(courier: Any) -> dict[str, float]:
    """Every figure by sample name, plus the sums ``held``, ``fallbacks`` and ``rate_limited``."""
    await refresh(courier)
    figures = {s.name: s.value for family in REGISTRY.collect() for s in family.samples if not s.labels}
    figures["held"] = total("courier_held_messages")
    figures["fallbacks"] = total("courier_fallbacks_total")
    figures["rate_limited"] = total("courier_rate_limited_total")
    return figures
