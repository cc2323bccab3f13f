"""mod_courier_route's set of released ids (route_idset.lib.lua), run by Lua 5.4 itself.

The module remembers every released hand-off id for a quarter of an hour to drop a
re-sent release; the set must answer exactly (a false "already released" would drop a
message, a false "new" would deliver one twice) while keeping the ids out of the
garbage collector's way (bench/README.md: a held flush of 100,000)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
LIB = HERE.parents[1] / "prosody-config" / "mod_courier_route" / "route_idset.lib.lua"
LUA = shutil.which("lua5.4")


def run(*case: str) -> str:
    assert LUA, "lua5.4 (Debian's package, a dependency of prosody) is not installed"
    done = subprocess.run([LUA, str(HERE / "idset_check.lua"), str(LIB), *case], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_id_added_is_remembered_and_nothing_else() -> None:
    assert run("exact").startswith("ok\tidset(794 ids, 3 chunks)")


def test_membership_stays_exact_when_hashes_collide() -> None:
    assert run("collisions").startswith("ok\t")


def test_remembered_ids_take_less_heap_than_a_table_of_strings() -> None:
    fields = run("heap", "100000").split()
    set_bytes, table_bytes = float(fields[1]), float(fields[2])
    # each id: its text in a shared chunk and one integer key, against a string object and a key
    assert set_bytes < 0.8 * table_bytes, fields
