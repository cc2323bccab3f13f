"""`make run` where port 5222 is taken: the message says how, and the Makefile passes ARGS on."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_make_run_passes_args_to_courier_up() -> None:
    out = subprocess.run(
        ["make", "-n", "run", "ARGS=--c2s-port 15222"], cwd=REPO, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert ".venv/bin/courier up --c2s-port 15222" in out.stdout


def test_a_taken_client_port_names_make_run_args(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run(
            [sys.executable, "-m", "component", "up", "--data", str(tmp_path / "data"), "--c2s-port", str(port)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert out.returncode == 1
    first, second = out.stderr.strip().splitlines()[-2:]
    assert first == f"courier: port {port} is in use (a system Prosody?)."
    assert second == 'Stop it or choose another: make run ARGS="--c2s-port 15222" (or courier up --c2s-port 15222).'
