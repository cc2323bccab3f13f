"""The group commit's unit: the writes of one commit and the effects that wait for it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Segment:
    """Queued writes of one commit, and the effects that wait for it."""

    inserts: list[tuple] = field(default_factory=list)
    hops: list[tuple] = field(default_factory=list)
    updates: list[tuple] = field(default_factory=list)
    absorbed: list[tuple] = field(default_factory=list)
    notices: list[tuple] = field(default_factory=list)
    outbox: list[tuple] = field(default_factory=list)  # unconfirmed sends (store/outbox.py)
    peer_tracks: list[tuple] = field(default_factory=list)  # messages tracked at a peer (store/peers.py)
    callbacks: list[Callable[[], None]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.inserts or self.hops or self.updates or self.absorbed or self.notices or self.outbox
                    or self.peer_tracks or self.callbacks)  # fmt: skip
