"""What Courier keeps in memory of each recalled message.

Courier keeps the refs (id and origin-id) of a recalled message for a day (``REF_MEMORY``, at
most ``REF_MAX`` of them), so that a late correction or retraction of it is absorbed and
never reaches the recipient.  At the bound that is REF_MAX entries: their size is what an
operator's Courier grows by under recalls, and what ``bench/soak.py`` sees after its warm-up.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from component.delivery.pipeline import Handoff, Pipeline
from component.store import Store
from tests import pgserver
from tests.delivery.test_pipeline import JULIET, Recorder, message

RECALLED = 2000
#: bytes per recalled message, both of its refs indexed (591 on 2026-12-07, `pytest -s` on this
#: file, as tuples of strings; 915 when each closed message kept a list of key tuples of its own;
#: see the figure in docs/reliability.md for the hashed form)
BOUND = 300


def deep_size(*roots: Any) -> int:
    """The bytes of *roots* and everything they hold (containers and their items), each object once."""
    seen: set[int] = set()
    stack = list(roots)
    total = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set)):
            stack.extend(obj)
        elif hasattr(obj, "__dict__") and not isinstance(obj, type):  # (arrays: getsizeof has their buffer)
            stack.extend(vars(obj).values())
    return total


async def test_a_recalled_message_costs_under_300_bytes_of_memory(tmp_path) -> None:
    store = await Store.open(pgserver.store_at(tmp_path / "c.sqlite"))
    p = Pipeline(store, Recorder(), "shakespeare.lit")
    await p.start()
    try:
        empty = deep_size(p.by_ref, p.closed_refs)
        now = time.time()
        for i in range(RECALLED):
            # each message with its own JID strings, as each parsed stanza has
            held = message(f"{i:08d}-aaaa-bbbb-cccc-dddddddddddd", f"text {i}", to=f"romeo{i % 7}@x.lit")
            held.set("from", f"{JULIET}/balcony")
            origin = held.makeelement("{urn:xmpp:sid:0}origin-id", {"id": f"{i:08d}-origin-bbbb-cccc-dddddddddddd"})
            held.append(origin)
            p.handoff(Handoff(f"h{i}", "offline", held, now))
            retraction = message(f"r{i}", None, to=held.get("to", ""), retract=held.get("id", ""))
            p.handoff(Handoff(f"r{i}", "offline", retraction, now))
        await p.drain()
        assert not p.open and not p.by_ref and len(p.closed_refs) == RECALLED
        per_message = (deep_size(p.by_ref, p.closed_refs) - empty) / RECALLED
        print(f"memory of a recalled message's refs: {per_message:.0f} bytes")
        assert per_message < BOUND
    finally:
        p.stop()
        await store.close()
