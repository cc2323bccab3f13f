"""Regression tests for issue 12's defects on the Prosody side (mod_courier_route)."""

from __future__ import annotations

import re
from pathlib import Path

from .harness import Stack

MODULE_DIR = Path(__file__).resolve().parents[2] / "prosody-config" / "mod_courier_route"
#: the module and its parts (route_*.lib.lua, loaded with module:require)
LUA = "\n".join(path.read_text() for path in sorted(MODULE_DIR.glob("*.lua")))
README = (Path(__file__).resolve().parents[2] / "prosody-config" / "README.md").read_text()


async def test_a_user_logging_in_gets_no_privilege_message(fault_stack: Stack) -> None:
    s = fault_stack
    s.start_courier()
    alice, bob = s.adduser("alice", "bob")
    a = await s.connect(alice)  # presence, then a ping round trip: the login is fully processed
    b = await s.connect(bob)
    b.chat(alice, "after login", "marker-1")  # a positive marker: it follows anything sent at login
    got = await a.next_message(10)
    assert got["body"] == "after login"
    assert a.privilege_notices == [] and b.privilege_notices == []


def test_readme_options_table_matches_the_module() -> None:
    in_code = set(re.findall(r'get_option_\w+\("(courier_\w+)"', LUA))
    section = README.split("### Options", 1)[1].split("\n### ", 1)[0]
    in_readme = set(re.findall(r"^\| `(courier_\w+)` \|", section, re.MULTILINE))
    assert in_code and in_code == in_readme


def test_every_timer_callback_is_guarded_and_timeouts_use_monotonic_time() -> None:
    timers = re.findall(r"module:add_timer\(([^\n]*)\)", LUA)
    assert timers
    for call in timers:
        assert "guarded(" in call, f"unguarded timer: add_timer({call})"
    # wall-clock time only for delay stamps and persisted fallback times
    for line in LUA.splitlines():
        if "time_now()" in line and "first_sent" in line:
            raise AssertionError(f"a timeout measured on the wall clock: {line.strip()}")
