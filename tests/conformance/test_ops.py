"""The operator's view (issue 15): /metrics against a scenario, `courier status`, admin commands,
signals and log levels — on a real Prosody with a real Courier process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import pytest

from component import prosody
from tests import pgserver

from .helpers import bot, eventually, execute, scrape, states
from .xmpp import REPO, CourierProcess


@pytest.fixture
def ops(stack, tmp_path, users):
    """A Courier with its metrics endpoint on a free loopback port, and one admin user."""
    (admin,) = users("admin")
    port = prosody.free_port()
    process = CourierProcess(
        stack, tmp_path / "ops", COURIER_METRICS_PORT=str(port), COURIER_ADMIN_JIDS=f"{admin}, nobody@example.org"
    )
    process.metrics_port, process.admin = port, admin  # type: ignore[attr-defined]
    process.start()
    yield process
    process.stop()


async def test_metrics_follow_held_edited_recalled_and_released_messages(ops, users, connect) -> None:
    alice, bob = users("alice", "bob")
    a = await connect(alice)
    before = await scrape(ops.metrics_port)
    assert before.one("courier_connected") == 1
    assert before.total("courier_held_messages") == 0

    for n in (1, 2, 3):
        a.chat(bob, f"message {n}", f"m{n}")
    await eventually(lambda: set(states(ops, alice).values()) == {"held"} and len(states(ops, alice)) == 3)
    held = await scrape(ops.metrics_port)
    assert held.one("courier_held_messages", reason="recipient-offline") == 3
    assert held.total("courier_held_messages") == 3
    assert held.one("courier_handoffs_total") - before.one("courier_handoffs_total") == 3
    assert held.one("courier_acks_total") - before.one("courier_acks_total") == 3

    a.correct(bob, "m1", "message 1, corrected", "m1-fix")
    a.retract(bob, "m2", "m2-retract")
    await eventually(lambda: states(ops, alice).get("m2") == "recalled", what="recall stored")
    changed = await scrape(ops.metrics_port)
    assert changed.one("courier_edits_total") - held.one("courier_edits_total") == 1
    assert changed.one("courier_recalls_total") - held.one("courier_recalls_total") == 1
    assert changed.total("courier_held_messages") == 2
    assert changed.one("courier_handoffs_total") - before.one("courier_handoffs_total") == 5

    b = await connect(bob)
    bodies = sorted([(await b.next_message())["body"] for _ in range(2)])
    assert bodies == ["message 1, corrected", "message 3"]
    await eventually(lambda: states(ops, alice) == {"m1": "released", "m2": "recalled", "m3": "released"})
    after = await scrape(ops.metrics_port)
    assert after.total("courier_held_messages") == 0
    assert after.one("courier_releases_total") - before.one("courier_releases_total") == 2
    waited = after.one("courier_release_latency_seconds_count") - before.one("courier_release_latency_seconds_count")
    assert waited == 2
    assert after.one("courier_store_commit_seconds_count") > before.one("courier_store_commit_seconds_count")
    assert after.one("courier_store_commit_failures_total") == 0
    assert after.total("courier_fallbacks_total") == 0


async def test_online_message_counts_a_release_and_no_held(ops, users, connect) -> None:
    alice, bob = users("alice", "bob")
    a, b = await connect(alice), await connect(bob)
    before = await scrape(ops.metrics_port)
    a.chat(bob, "straight through", "s1")
    assert (await b.next_message())["body"] == "straight through"
    after = await scrape(ops.metrics_port)
    assert after.one("courier_releases_total") - before.one("courier_releases_total") == 1
    assert after.one("courier_handoffs_total") - before.one("courier_handoffs_total") == 1
    assert after.total("courier_held_messages") == 0


async def test_courier_status_reads_the_running_instance(ops, users, connect) -> None:
    alice, bob = users("alice", "bob")
    a = await connect(alice)
    for n in (1, 2):
        a.chat(bob, f"for later {n}", f"h{n}")
    await eventually(lambda: len(states(ops, alice)) == 2 and set(states(ops, alice).values()) == {"held"})
    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "component", "status", "--port", str(ops.metrics_port)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines() if line.strip()}
    assert "connected to 127.0.0.1:" in lines["Connection"]
    assert lines["Held"].startswith("Held now     2 (recipient offline 2,")
    assert "2 received, 2 acknowledged" in lines["Hand-offs"]
    engine = "PostgreSQL, lease held (the active Courier); " if pgserver.engine() == "postgresql" else "SQLite; "
    assert lines["Store"].startswith(f"Store        {engine}")
    assert "Last" in lines


async def test_courier_status_says_when_nothing_answers() -> None:
    port = prosody.free_port()
    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "component", "status", "--port", str(port), "--timeout", "2"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
    )
    assert out.returncode == 2
    assert f"no Courier answers at http://127.0.0.1:{port}" in out.stderr


@pytest.fixture
def commands_client(connect):
    async def make(jid):
        c = await connect(jid)
        c.register_plugin("xep_0004")
        c.register_plugin("xep_0050")
        return c

    return make


async def test_admin_commands_for_an_admin(ops, stack, users, connect, commands_client) -> None:
    alice, bob = users("alice", "bob")
    a = await connect(alice)
    for n in (1, 2, 3):
        a.chat(bob, f"secret text {n}", f"x{n}")
    await eventually(lambda: len(states(ops, alice)) == 3 and set(states(ops, alice).values()) == {"held"})
    admin = await commands_client(ops.admin)

    stats = await execute(admin, stack.component, "admin-statistics")
    assert stats["status"] == "completed"
    figures = {item["figure"]: item["value"] for item in stats["form"]["items"]}
    assert figures["Messages held now"] == "3"
    assert figures["Connected to the server (1 = yes)"] == "1"

    first = await execute(admin, stack.component, "admin-held")
    held = await execute(admin, stack.component, "admin-held", sessionid=first["sessionid"], values={"user": bob})
    assert held["status"] == "completed"
    rows = {item["reason"]: (item["to"], item["from"]) for item in held["form"]["items"]}
    assert rows["recipient offline"] == ("3", "0")
    text = str(held)
    assert "secret text" not in text  # counts, never contents
    of_alice = await execute(admin, stack.component, "admin-held", sessionid=None, action=None)
    of_alice = await execute(
        admin, stack.component, "admin-held", sessionid=of_alice["sessionid"], values={"user": alice}
    )
    assert {item["reason"]: item["from"] for item in of_alice["form"]["items"]}["recipient offline"] == "3"

    first = await execute(admin, stack.component, "admin-release")
    done = await execute(admin, stack.component, "admin-release", sessionid=first["sessionid"], values={"user": bob})
    assert done["status"] == "completed"
    assert "Released 3 message(s)" in str(done)
    await eventually(lambda: set(states(ops, alice).values()) == {"released"}, what="released by the admin")
    # bob was offline: his server stored them, and he gets each once when he logs in
    b = await connect(bob)
    got = sorted([(await b.next_message())["body"] for _ in range(3)])
    assert got == ["secret text 1", "secret text 2", "secret text 3"]
    a.chat(bob, "marker", "marker")
    assert (await b.next_message())["body"] == "marker"  # nothing else came in between


async def test_admin_commands_are_forbidden_to_other_users(ops, stack, users, connect, commands_client) -> None:
    alice, bob = users("alice", "bob")
    a = await connect(alice)
    a.chat(bob, "held", "y1")
    await eventually(lambda: states(ops, alice) == {"y1": "held"})
    mallory = await commands_client(users("mallory")[0])
    for node in ("admin-statistics", "admin-held", "admin-release"):
        with pytest.raises(Exception) as refused:
            await execute(mallory, stack.component, node)
        assert refused.value.iq["error"]["condition"] == "forbidden", node
        assert refused.value.iq["error"]["type"] == "auth"
    # the bot says the same; its help marks them as the admins'
    mallory.chat(stack.component, "release " + bob, origin_id=False)
    assert (await mallory.next_message())["body"].startswith("Forbidden:")
    mallory.chat(stack.component, "help", origin_id=False)
    assert "release — admins only: release every message" in (await mallory.next_message())["body"]
    assert states(ops, alice) == {"y1": "held"}  # nothing was released


async def test_sighup_reloads_the_log_level(ops) -> None:
    assert "DEBUG courier.metrics: served /metrics" not in ops.log_text()
    ops.config.write_text(ops.config.read_text().replace('level = "DEBUG"', 'level = "INFO"'))
    os.kill(ops.proc.pid, signal.SIGHUP)
    await asyncio.to_thread(ops.wait_log, "SIGHUP: configuration reloaded: log level INFO")
    await scrape(ops.metrics_port)
    ops.config.write_text(ops.config.read_text().replace('level = "INFO"', 'level = "DEBUG"'))
    os.kill(ops.proc.pid, signal.SIGHUP)
    await asyncio.to_thread(ops.wait_log, "SIGHUP: configuration reloaded: log level DEBUG")
    await scrape(ops.metrics_port)
    await asyncio.to_thread(ops.wait_log, "DEBUG courier.metrics: served /metrics")
    log = ops.log_text()
    at_info, at_debug = log.split("log level INFO", 1)[1].split("log level DEBUG", 1)
    assert "DEBUG" not in at_info  # the first scrape, at INFO, logged no debug line
    assert "served /metrics" in at_debug
    assert ops.proc.poll() is None  # SIGHUP did not stop it


async def test_sigterm_stops_cleanly(ops) -> None:
    ops.proc.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(ops.proc.wait, 10)
    assert code == 0
    assert "Courier stopped" in ops.log_text()
    ops.proc = None


async def test_courier_up_honours_log_level_and_serves_metrics(tmp_path) -> None:
    """`courier up --metrics-port P` with COURIER_LOG_LEVEL=DEBUG: debug lines appear (default is INFO)."""
    port = prosody.free_port()
    output = tmp_path / "up.log"
    argv = [sys.executable, "-m", "component", "up", "--data", str(tmp_path / "var"), "--domain", "localhost"]
    argv += ["--c2s-port", str(prosody.free_port()), "--component-port", str(prosody.free_port())]
    argv += ["--metrics-port", str(port)]
    with output.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=out, cwd=REPO, env={**os.environ, "COURIER_LOG_LEVEL": "DEBUG"},
            start_new_session=True,
        )  # fmt: skip
    try:
        await eventually(lambda: "connected to" in output.read_text(), timeout=30, what="courier up connected")
        assert f"Metrics  http://127.0.0.1:{port}/metrics" in output.read_text()
        figures = await scrape(port)
        assert figures.one("courier_connected") == 1
        await eventually(lambda: "DEBUG courier.metrics: served /metrics" in output.read_text(), what="debug line")
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 20) == 0
        assert "Courier stopped" in output.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


async def test_courier_up_prosody_gc_is_applied_and_kept(tmp_path) -> None:
    """`courier up --prosody-gc generational`: Prosody runs with that GC mode (its config says so, Prosody
    accepted it), the choice is kept for the next `courier up`, and a mode Prosody lacks is refused."""
    data = tmp_path / "var"
    ports = ["--c2s-port", str(prosody.free_port()), "--component-port", str(prosody.free_port())]
    argv = [sys.executable, "-m", "component", "up", "--data", str(data), "--domain", "localhost", *ports]
    bad = await asyncio.to_thread(
        subprocess.run, [*argv, "--prosody-gc", "stop-the-world"], capture_output=True, text=True, cwd=REPO
    )
    assert bad.returncode == 2 and "invalid choice: 'stop-the-world'" in bad.stderr

    for extra in (["--prosody-gc", "generational"], []):  # the second run: kept from the first
        output = tmp_path / f"up{len(extra)}.log"
        with output.open("wb") as out:
            proc = subprocess.Popen([*argv, *extra], stdout=out, stderr=out, cwd=REPO, start_new_session=True)
        try:
            await eventually(
                lambda output=output: "connected to" in output.read_text(), timeout=30, what="courier up connected"
            )
            assert "GC generational" in output.read_text()
            assert 'gc = { mode = "generational" }' in (data / "prosody.cfg.lua").read_text()
            log = (data / "prosody.log").read_text()
            assert "Failed to apply GC configuration" not in log and "GC mode not supported" not in log
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(proc.wait, 20) == 0
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


async def test_drafts_and_list_copies_are_counted(ops, stack, users, connect) -> None:
    alice, bob, carol = users("alice", "bob", "carol")
    a = await connect(alice)
    before = await scrape(ops.metrics_port)
    assert (await bot(a, stack.component, f"draft {bob} when-online Hello when you are back")).startswith("Draft 1")
    pending = await scrape(ops.metrics_port)
    assert pending.one("courier_drafts_pending") - before.one("courier_drafts_pending") == 1
    b = await connect(bob)
    assert (await b.next_message())["body"] == "Hello when you are back"
    assert (await a.next_message())["body"].startswith(f"Draft 1 sent to {bob}")
    await eventually(lambda: states(ops, alice) and set(states(ops, alice).values()) == {"released"})
    fired = await scrape(ops.metrics_port)
    assert fired.one("courier_drafts_fired_total") - before.one("courier_drafts_fired_total") == 1
    assert fired.one("courier_drafts_pending") == before.one("courier_drafts_pending")

    created = await bot(a, stack.component, f"list create team {bob} {carol}")
    assert created.startswith("Created “team” with 2 member(s)"), created
    sent = await bot(a, stack.component, "list send team To the team")
    assert sent.startswith("Sent to “team”: 2 members"), sent
    assert (await b.next_message())["body"] == "To the team"
    copies = await scrape(ops.metrics_port)
    assert copies.one("courier_fanout_copies_total") - before.one("courier_fanout_copies_total") == 2


async def test_sighup_applies_new_limits(ops, stack, users, connect) -> None:
    alice, bob = users("alice", "bob")
    a = await connect(alice)
    assert (await bot(a, stack.component, f"draft {bob} one")).startswith("Draft 1")
    ops.config.write_text(ops.config.read_text() + "[drafts]\nmax_pending = 1\n")
    os.kill(ops.proc.pid, signal.SIGHUP)
    await asyncio.to_thread(ops.wait_log, "SIGHUP: configuration reloaded")
    assert (await bot(a, stack.component, f"draft {bob} two")).startswith("You already have 1 pending drafts")


async def test_status_of_a_courier_that_cannot_reach_prosody(stack, tmp_path) -> None:
    """Not connected: the gauge reads 0, `courier status` says so (exit 1) and shows the last warnings."""
    port, nowhere = prosody.free_port(), prosody.free_port()
    process = CourierProcess(stack, tmp_path / "lost", COURIER_METRICS_PORT=str(port), COURIER_XMPP_PORT=str(nowhere))
    with process.log.open("ab") as out:
        process.proc = subprocess.Popen(
            [sys.executable, "-m", "component", "run", "--config", str(process.config)],
            stdout=out, stderr=out, env=process.env, cwd=REPO, start_new_session=True,
        )  # fmt: skip
    try:
        await asyncio.to_thread(process.wait_log, "reconnecting in", 15)
        assert (await scrape(port)).one("courier_connected") == 0
        out = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "component", "status", "--port", str(port)],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=30,
        )
        assert out.returncode == 1, out.stdout + out.stderr
        assert f"NOT connected to 127.0.0.1:{nowhere}" in out.stdout
        assert "WARNING courier: Disconnected from 127.0.0.1; reconnecting in" in out.stdout
    finally:
        process.stop()


async def test_rate_limited_requests_are_counted(stack, users, connect, tmp_path) -> None:
    (alice,) = users("alice")
    port = prosody.free_port()
    limits = {"COURIER_REQUESTS_BURST": "2", "COURIER_REQUESTS_PER_SECOND": "0.01"}
    process = await CourierProcess(stack, tmp_path / "limited", COURIER_METRICS_PORT=str(port), **limits).start_async()
    try:
        a = await connect(alice)
        refused = 0
        for _ in range(5):
            try:
                await a.plugin["xep_0030"].get_info(jid=stack.component, timeout=5)
            except Exception as exc:
                assert exc.iq["error"]["condition"] == "resource-constraint"
                refused += 1
        assert refused == 3
        figures = await scrape(port)
        assert figures.one("courier_rate_limited_total", limit="requests") == 3
    finally:
        process.stop()
