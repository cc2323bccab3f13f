"""The fault suite: the conformance fixtures (a real Prosody per session, a real Courier per
test, real clients), plus a small disk for faults of the store's disk."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.conformance.conftest import connect, courier, stack, users  # noqa: F401  (fixtures)

from .harness import Stack


class SmallDisk:
    """A tmpfs of *size* mounted for one test: a disk that really fills up."""

    def __init__(self, path: Path, size: str) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
        self.filler = path / "filler"

    def fill(self) -> None:
        """Take every free byte (the filler file grows until the disk says no)."""
        chunk = b"\0" * 65536
        with self.filler.open("ab", buffering=0) as f:
            try:
                while True:
                    f.write(chunk)
            except OSError:
                pass

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    try:
        disk = SmallDisk(tmp_path / "disk", "8m")
    except (subprocess.CalledProcessError, FileNotFoundError, PermissionError) as exc:
        pytest.skip(f"cannot mount a tmpfs here ({exc}): the disk-full fault needs one")
    yield disk
    disk.unmount()


@pytest.fixture
async def fault_stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """A Prosody and a Courier of this test's own: the process faults kill or freeze them."""
    s = Stack(tmp_path)
    try:
        yield s
    finally:
        await s.close()
