"""Courier's own clock for ``python -m bench.legs --inside``: where Courier's leg goes.

``bench.legs`` sees Courier's leg from the wire (the hand-off in, its ``<ack/>`` out); this
splits it.  The Courier processes legs starts get ``bench/inside_site`` on their PYTHONPATH:
its ``sitecustomize`` calls :func:`install`, which wraps five of Courier's functions with
``time.perf_counter()`` marks, and each hand-off's marks are written to
``$COURIER_INSIDE_OUT/<pid>.json`` (also when Courier exits).  Nothing of Courier's code is
changed, and no other run imports this.

The steps of one hand-off, one at a time (each from the end of the one before):

* ``parse``: the bytes read (``data_received``) until the hand-off is read (``_on_handoff``):
  expat, slixmpp's loop over the parser's events, ``route.take``;
* ``decide``: the pipeline's work (``_on_handoff`` returns): its decisions, the stored
  stanza serialised, the store's writes and the after-commit effects queued;
* ``to commit``: until the writer task runs the commit (an event-loop turn or more);
* ``commit``: the transaction (``Store._transaction``: BEGIN, the statements, COMMIT);
* ``after commit``: the after-commit effects until the batched answer is built
  (``flush_answers``, a loop turn after the release was queued);
* ``write``: the ``<ack/>`` written as text to the socket (``flush_answers`` returns).
"""

from __future__ import annotations

import atexit
import functools
import inspect
import json
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SITE = Path(__file__).resolve().parent / "inside_site"
STEPS = ("parse", "decide", "to commit", "commit", "after commit", "write")
_MARKS = ("read", "handoff", "decided", "commit", "committed", "answer", "written")


def environment(out: Path) -> dict[str, str]:
    """What a Courier process needs in its environment to be clocked into *out*."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [str(SITE), str(SITE.parent.parent), os.environ.get("PYTHONPATH", "")]
    return {"PYTHONPATH": os.pathsep.join(p for p in paths if p), "COURIER_INSIDE_OUT": str(out)}


def install(out: str) -> None:
    """In a Courier process (from ``sitecustomize``): wrap the functions, dump at exit."""
    from component.app import Courier
    from component.store import Store
    from component.xep.route.route import XEP_CourierRoute

    marks: dict[str, float] = {}
    cycles: list[list[float]] = []

    def mark(name: str, needs: str | None = None) -> None:
        if (needs is None or needs in marks) and name not in marks:
            marks[name] = time.perf_counter()

    def read(args: tuple[Any, ...]) -> None:
        now = time.perf_counter()
        if marks and now - marks["read"] > 1.0:
            marks.clear()  # (a hand-off that was not released at once: held, or failed)
        if not marks and b"<handoff" in (args[1] if isinstance(args[1], bytes) else args[1].encode()):
            marks["read"] = now

    def written(_args: tuple[Any, ...]) -> None:
        mark("written", "answer")
        if "written" in marks:
            cycles.append([(marks[a] - marks[b]) * 1e6 for a, b in zip(_MARKS[1:], _MARKS, strict=False)])
            if len(cycles) % 100 == 0:
                dump()
            marks.clear()

    @functools.cache
    def domain() -> str:  # (read once, at the first dump: sys.argv is Courier's by then)
        config = next((a for a in sys.argv if a.endswith(".toml")), "")
        text = Path(config).read_text() if config else ""
        return m[1] if (m := re.search(r'domain = "([^"]+)"', text)) else "?"

    def dump() -> None:
        Path(out, f"{os.getpid()}.json").write_text(json.dumps({"domain": domain(), "cycles": cycles}))

    wrap(Courier, "data_received", read)
    wrap(Courier, "_on_handoff", lambda _a: mark("handoff", "read"), lambda _a: mark("decided", "handoff"))
    wrap(Store, "_transaction", lambda _a: mark("commit", "decided"), lambda _a: mark("committed", "commit"))
    wrap(XEP_CourierRoute, "flush_answers", lambda _a: mark("answer", "committed"), written)
    atexit.register(dump)


def wrap(
    cls: type,
    name: str,
    before: Callable[[tuple[Any, ...]], None],
    after: Callable[[tuple[Any, ...]], None] | None = None,
) -> None:
    original = getattr(cls, name)
    if inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def clocked_async(*args: Any, **kwargs: Any) -> Any:
            before(args)
            try:
                return await original(*args, **kwargs)
            finally:
                if after is not None:
                    after(args)

        setattr(cls, name, clocked_async)
        return

    @functools.wraps(original)
    def clocked(*args: Any, **kwargs: Any) -> Any:
        before(args)
        try:
            return original(*args, **kwargs)
        finally:
            if after is not None:
                after(args)

    setattr(cls, name, clocked)


def report(out: Path, skip: int) -> list[str]:
    """Each clocked Courier's steps (after its first *skip* hand-offs, the warm-up): p50 / mean µs."""
    lines = []
    for path in sorted(out.glob("*.json")):
        data = json.loads(path.read_text())
        cycles = data["cycles"][skip:]
        if not cycles:
            continue
        lines.append(f"inside Courier ({data['domain']}), {len(cycles)} hand-offs released at once, µs:")
        columns = list(zip(*cycles, strict=True))
        for step, values in zip(STEPS, columns, strict=True):
            lines.append(f"  {step:<14} p50 {statistics.median(values):7.0f}   mean {statistics.fmean(values):7.0f}")
        totals = [sum(c) for c in cycles]
        lines.append(f"  {'whole leg':<14} p50 {statistics.median(totals):7.0f}   mean {statistics.fmean(totals):7.0f}")
    return lines
