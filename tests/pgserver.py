"""A real PostgreSQL for the tests: Debian's server binaries, started by the tests themselves.

Its own data directory (``initdb``, trust authentication for one role on loopback only), a free
loopback port, run as the ``postgres`` system user when the tests run as root (PostgreSQL
refuses to run as root), stopped at the end of the session.  Each store gets a fresh database.
``COURIER_TEST_STORE=postgresql`` runs the engine-neutral tests on it (tests/conftest.py).
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from component import prosody

ROLE = "courier"
_ids = itertools.count(1)


def engine() -> str:
    """The engine the tests run Courier's store on: ``sqlite`` (default) or ``postgresql``."""
    return os.environ.get("COURIER_TEST_STORE", "sqlite").lower()


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError("PostgreSQL server binaries missing: run `make system` (Debian's postgresql)")
    return Path(found[-1]).parent


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory."""

    def __init__(self) -> None:
        self.bin = _bindir()
        self.dir = Path(tempfile.mkdtemp(prefix="courier-pg-"))
        self.data = self.dir / "data"
        self.port = prosody.free_port()
        self._as: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses root: run it as the postgres system user
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *argv: str) -> None:
        subprocess.run([*self._as, *argv], check=True, capture_output=True, cwd=self.dir)

    def start(self, fsync: bool = False) -> PostgresServer:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", ROLE, "-A", "trust", "--no-sync", "-E", "UTF8")
        # fsync off: the tests kill Courier, never the database server; bench/ measures with it on.
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync={'on' if fsync else 'off'} "
        opts += "-c max_connections=200"
        log = str(self.dir / "log")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", log, "-o", opts, "-w", "start")
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{ROLE}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A fresh, empty database; its URL."""
        name = f"courier_{os.getpid()}_{next(_ids)}"
        self._run(str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", ROLE, "-d", "postgres",
                  "-q", "-c", f"CREATE DATABASE {name}")  # fmt: skip
        return self.url(name)

    def psql(self, database_url: str, sql: str) -> str:
        """Run *sql* with psql; its unaligned output."""
        argv = [str(self.bin / "psql"), database_url, "-At", "-q", "-c", sql]
        return subprocess.run([*self._as, *argv], check=True, capture_output=True, text=True, cwd=self.dir).stdout

    def stop(self) -> None:
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


_server: PostgresServer | None = None


def server(fsync: bool = False) -> PostgresServer:
    """The session's PostgreSQL, started on first use (*fsync*: as in production, for bench/)."""
    global _server
    if _server is None:
        _server = PostgresServer().start(fsync=fsync)
        atexit.register(stop)  # also when the session ends without pytest's hooks (bench/, an interrupt)
    return _server


def stop() -> None:
    global _server
    if _server is not None:
        _server.stop()
        _server = None


_targets: dict[Path, str] = {}


def store_at(path: Path) -> Path | str:
    """A test's store: *path* (SQLite), or with COURIER_TEST_STORE=postgresql one fresh database per path
    (the same one again when a test reopens its store)."""
    if engine() != "postgresql":
        return path
    if path not in _targets:
        _targets[path] = server().create_database()
    return _targets[path]
