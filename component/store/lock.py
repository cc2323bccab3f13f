"""One Courier per store: an exclusive lock on ``<store>.lock`` held while the store is open.

Two Couriers writing one SQLite file would each hold, release and re-send the other's
messages. The lock is the kernel's (``flock``), so a Courier that crashes or is killed
releases it with its process and a restart never finds a stale lock. The file records the
holder's pid, which the refusal names.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class StoreLocked(RuntimeError):
    """Another process holds the store."""


class StoreLock:
    """The lock of the store at *path*; :meth:`acquire` or :class:`StoreLocked`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(f"{path}.lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreLocked(
                f"the store {str(self.path)[: -len('.lock')]} is in use by another Courier (pid {holder}); "
                "one Courier per store — stop the other one, or give this one its own store.path"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None
