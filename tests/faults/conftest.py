"""The fault suite: the conformance fixtures (a real Prosody per session, a real Courier per
test, real clients), plus a small disk for faults of the store's disk and strace for faults
of its system calls (a store gone read-only, a slow fsync)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
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
        # 32 MB: once freed, the disk must hold what Courier kept queued while it was full
        # (the 40 messages of 60 kB Prosody delivered itself are recorded with their text, ~5 MB)
        # twice, in the WAL and then in the database the checkpoint copies them into: on 8 MB
        # that refilled the disk and the store stayed full until a restart (once in a loaded run).
        disk = SmallDisk(tmp_path / "disk", "32m")
    except (subprocess.CalledProcessError, FileNotFoundError, PermissionError) as exc:
        pytest.skip(f"cannot mount a tmpfs here ({exc}): the disk-full fault needs one")
    yield disk
    disk.unmount()


class Strace:
    """strace attached to every thread of a running process (``-f -p``), injecting a fault into
    some of its system calls (``-e inject=…``) without touching its code; :meth:`detach` ends
    the fault.  The process goes on running, traced, meanwhile."""

    def __init__(self, pid: int, args: Sequence[str], log: Path) -> None:
        self.pid, self.log = pid, log
        self.proc = subprocess.Popen(
            ["strace", "-f", "-p", str(pid), "-o", str(log), *args], stderr=subprocess.PIPE, text=True
        )  # fmt: skip

    def attached(self, timeout: float = 10) -> Strace:
        """Wait until every thread of the process is traced (its TracerPid is strace)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"strace exited with {self.proc.returncode}: {self.proc.stderr.read()}")  # type: ignore[union-attr]
            tracers = {_tracer(self.pid, tid) for tid in os.listdir(f"/proc/{self.pid}/task")}
            if tracers == {self.proc.pid}:
                return self
            if time.monotonic() > deadline:
                raise TimeoutError(f"strace did not attach to every thread of {self.pid}: {tracers}")
            time.sleep(0.02)

    def injected(self) -> int:
        """How many system calls got the fault so far."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text.count("(INJECTED)") + text.count("(DELAYED)")

    def detach(self) -> None:
        """strace detaches from every thread on SIGTERM: the process goes on untraced."""
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(10)


def _tracer(pid: int, tid: str) -> int:
    try:
        status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
    except FileNotFoundError:
        return -1  # a thread that just ended
    return int(status.split("TracerPid:", 1)[1].split()[0])


@pytest.fixture
def strace(tmp_path: Path) -> Iterator[Callable[[int, Sequence[str]], Strace]]:
    """Attach strace to a pid with some fault injected; skipped where strace cannot attach."""
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed (scripts/install-system.sh --tests installs it)")
    made: list[Strace] = []

    def attach(pid: int, args: Sequence[str]) -> Strace:
        s = Strace(pid, args, tmp_path / f"strace-{len(made)}.log")
        made.append(s)
        try:
            return s.attached()
        except RuntimeError as exc:
            if "Operation not permitted" in str(exc):
                pytest.skip(f"strace cannot attach here (ptrace refused): {exc}")
            raise

    yield attach
    for s in made:
        s.detach()


@pytest.fixture
async def fault_stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """A Prosody and a Courier of this test's own: the process faults kill or freeze them."""
    s = Stack(tmp_path)
    try:
        yield s
    finally:
        await s.close()
