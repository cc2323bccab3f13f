"""What the store tells its callers when it cannot commit."""

from __future__ import annotations


class StoreUnavailable(RuntimeError):
    """The store has not been able to commit for a while (disk full, read-only, I/O errors).

    What the caller queued is kept and committed when the store recovers; the caller is told
    now instead of waiting without end. The message is a sentence for the user.
    """


__all__ = ["StoreUnavailable"]
