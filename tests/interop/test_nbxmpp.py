"""nbxmpp 7.4.0 (Gajim's library) against the real Prosody + Courier; the other side
is a slixmpp client that records every stanza.

nbxmpp parses ad-hoc replies strictly (a reply without ``status``, ``sessionid``
or ``node`` is a ``MalformedStanzaError``) and, like Gajim, submits with
``action='complete'`` and the whole form echoed back (labels, options, desc).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import pytest

from component.commands import all_commands

from .conftest import NBXMPP_PYTHON, PASSWORD, corrected_when_online, eventually, require, states, wire, wire_to_marker
from .nbxmpp_client import NbxmppClient


@pytest.fixture
async def nbxmpp(stack, tmp_path) -> AsyncIterator[Callable[[str], object]]:
    require("nbxmpp 7.4.0 (apt: python3-nbxmpp, then a venv)", NBXMPP_PYTHON.exists())
    started: list[NbxmppClient] = []

    async def login(jid: str) -> NbxmppClient:
        client = NbxmppClient(NBXMPP_PYTHON, jid, PASSWORD, stack.c2s_port, tmp_path / f"nbxmpp-{len(started)}.log")
        started.append(client)
        return await client.start()

    yield login
    for client in started:
        await client.stop()


def fields(reply: dict) -> dict[str, object]:
    return {f["var"]: f["value"] for f in reply["form"]["fields"]}


async def test_hold_and_correct(courier, users, connect, nbxmpp) -> None:
    """Bob is offline; Alice sends and corrects as Gajim does: Bob later gets one message, corrected."""
    alice, bob = users("alice", "bob")
    n = await nbxmpp(alice)
    await n.request("send", to=bob, body="Meet me at nine", id="g1")
    await eventually(lambda: states(courier, alice) == {"g1": "held"}, what="held for offline Bob")
    sent = await n.request("correct", to=bob, body="Meet me at ten", id="g1-fix", replace="g1")
    assert '<replace xmlns="urn:xmpp:message-correct:0" id="g1" />' in sent["xml"]
    got = await corrected_when_online(courier, connect, n, alice, bob, "g1", "Meet me at ten")
    assert got["request_receipt"]  # Gajim's request passes (Bob's policy: auto)


async def test_command_list_and_single_stage(courier, stack, users, nbxmpp) -> None:
    (alice,) = users("alice")
    n = await nbxmpp(alice)
    listed = await n.request("commands", jid=stack.component)
    assert listed["commands"] == [[c.node, c.name] for c in all_commands()]
    done = await n.request("execute", jid=stack.component, node="pending")
    assert done.get("error") is None
    assert (done["node"], done["status"]) == ("pending", "completed")
    assert done["notes"] == [["info", "You have no messages waiting at the server."]]


async def test_pending_edit_multi_stage_whole_form_echoed(courier, stack, users, connect, nbxmpp) -> None:
    """Execute → form; Gajim's submission (complete + the whole form) → completed; Bob gets the edit."""
    alice, bob = users("alice", "bob")
    n = await nbxmpp(alice)
    await n.request("send", to=bob, body="Dinner at 7", id="g2")
    await eventually(lambda: states(courier, alice) == {"g2": "held"}, what="held")
    form = await n.request("execute", jid=stack.component, node="pending")
    assert form.get("error") is None, form
    assert (form["node"], form["status"]) == ("pending", "executing") and form["sessionid"]
    assert "complete" in form["actions"]
    assert fields(form) == {"message": "g2", "action": "show", "text": ""}
    (picker,) = [f for f in form["form"]["fields"] if f["var"] == "message"]
    assert picker["options"] == [[f"1. to {bob}, just now: Dinner at 7", "g2"]]  # no id to type
    labels = {f["var"]: f["label"] for f in form["form"]["fields"]}
    assert labels == {"message": "Message", "action": "What to do", "text": "New text (to edit)"}
    done = await n.request("submit", values={"action": "edit", "text": "Dinner at 8"}, action="complete")
    echoed = [e for e in n.events if e["event"] == "sent-form"][-1]["xml"]
    assert 'label="Replace its text"' in echoed and "<desc>" in echoed  # the whole form went back
    assert done.get("error") is None, done
    assert (done["node"], done["status"], done["sessionid"]) == ("pending", "completed", form["sessionid"])
    assert done["notes"] == [
        ["info", f"Edited your message to {bob}.\nThey will receive only the new text: “Dinner at 8” (id g2)."]
    ]

    b = await connect(bob)
    got = await b.next_message()
    assert (str(got["from"]), got["id"], got["body"]) == (alice, "g2", "Dinner at 8")
    assert await wire_to_marker(b, n, alice) == ["body:Dinner at 8", "body:marker"]


async def test_a_bad_value_comes_back_and_can_be_fixed(courier, stack, users, nbxmpp) -> None:
    """A validation error keeps the session executing (even after action=complete), with the reason."""
    (alice,) = users("alice")
    n = await nbxmpp(alice)
    form = await n.request("execute", jid=stack.component, node="settings")
    assert fields(form) == {"undo_window": "0", "reports": False, "chat_reports": False}
    again = await n.request("submit", values={"undo_window": "soon"}, action="complete")
    assert again.get("error") is None, again
    assert (again["status"], again["sessionid"]) == ("executing", form["sessionid"])
    assert again["notes"] == [["error", "The undo-send window must be a number of seconds, not “soon”."]]
    assert fields(again)["undo_window"] == "soon"
    done = await n.request("submit", values={"undo_window": "3", "reports": True}, action="complete")
    assert done["status"] == "completed"
    assert done["notes"] == [["info", "Saved. Undo-send window: 3 s. Hop reports: on. Chat reports: off."]]


async def test_actions_name_complete_as_the_default(courier, stack, users, connect) -> None:
    (alice,) = users("alice")
    a = await connect(alice)  # slixmpp, to read the raw <actions/> nbxmpp interprets
    iq = a.make_iq_set(ito=stack.component)
    iq["command"]["node"] = "settings"
    iq["command"]["action"] = "execute"
    reply = await iq.send(timeout=5)
    actions = reply.xml.find(
        "{http://jabber.org/protocol/commands}command/{http://jabber.org/protocol/commands}actions"
    )
    assert [child.tag.split("}")[1] for child in actions] == ["complete"]
    assert actions.get("execute") == "complete"


async def test_confirm_picks_a_message_without_a_receipt(courier, stack, users, connect, nbxmpp) -> None:
    """Bob (manual policy) runs "Confirm a receipt" as Gajim would: the message is a list entry
    (sender, age, text), never an id to type; the whole form echoed back sends Alice the receipt."""
    alice, bob = users("alice", "bob")
    n = await nbxmpp(bob)
    await n.send(op="send", to=stack.component, body="receipts manual", id="r1")
    await eventually(lambda: [m for m in n.messages() if m["frm"] == stack.component], what="the bot's answer")
    a = await connect(alice)
    msg = a.make_message(mto=bob, mbody="Sign the lease", mtype="chat")
    msg["id"], msg["request_receipt"] = "lease-1", True
    msg.send()
    await eventually(lambda: [m for m in n.messages() if m["id"] == "lease-1"], what="delivered to Gajim's library")
    form = await n.request("execute", jid=stack.component, node="confirm")
    assert form.get("error") is None, form
    assert (form["node"], form["status"]) == ("confirm", "executing")
    (picker,) = form["form"]["fields"]
    assert (picker["var"], picker["type"], picker["label"]) == ("id", "list-single", "Message")
    assert picker["options"] == [[f"1. from {alice}, just now: Sign the lease", "lease-1"]]
    done = await n.request("submit", values={}, action="complete")
    assert done.get("error") is None, done
    assert (done["status"], done["notes"]) == (
        "completed",
        [["info", f"Receipt sent to {alice}.\nFor “Sign the lease” (id lease-1)."]],
    )
    await eventually(lambda: wire(a, bob) == ["receipt:lease-1"], what="the receipt at Alice")


async def test_bot_help(courier, stack, users, nbxmpp) -> None:
    (alice,) = users("alice")
    n = await nbxmpp(alice)
    await n.send(op="send", to=stack.component, body="help", id="h1")
    await eventually(lambda: [m for m in n.messages() if m["frm"] == stack.component], what="the bot's answer")
    (reply,) = [m for m in n.messages() if m["frm"] == stack.component]
    for cmd in all_commands():
        assert f"{' | '.join(cmd.words)} — {cmd.help}. Example: {cmd.example}" in reply["body"]


async def draft_form(n, stack, values: dict[str, str]) -> tuple[dict, dict]:
    """ "New draft" as Gajim runs it: execute, then the whole form echoed back with action=complete."""
    form = await n.request("execute", jid=stack.component, node="draft")
    assert form.get("error") is None, form
    assert (form["node"], form["status"]) == ("draft", "executing") and form["sessionid"]
    done = await n.request("submit", values=values, action="complete")
    assert done.get("error") is None, done
    assert (done["status"], done["sessionid"]) == ("completed", form["sessionid"])
    return form, done


async def test_new_draft_due_in_2s_then_my_drafts_sends_one(courier, stack, users, connect, nbxmpp) -> None:
    """ "New draft" (multi-stage, whole form echoed) due in 2 s: Bob gets it from Alice then, not
    before, and Alice is told. A manual draft for offline Carol is sent from "My drafts"."""
    alice, bob, carol = users("alice", "bob", "carol")
    b = await connect(bob)
    n = await nbxmpp(alice)
    form, done = await draft_form(n, stack, {"to": bob, "text": "Happy birthday!", "trigger": "at", "when": "in 2s"})
    due = time.time() + 2
    assert fields(form) == {"to": "", "text": "", "trigger": "manual", "when": "", "from": "", "action": "send"}
    labels = {f["var"]: f["label"] for f in form["form"]["fields"]}
    assert (labels["to"], labels["trigger"], labels["action"]) == ("To", "Send occasion", "Then")
    echoed = [e for e in n.events if e["event"] == "sent-form"][-1]["xml"]
    assert 'label="When the contact comes online"' in echoed and "<desc>" in echoed  # the whole form went back
    ((kind, note),) = done["notes"]
    assert kind == "info" and note.startswith(f"Draft 1 stored for {bob}") and "will be sent at " in note
    got = await b.next_message(due - time.time() + 3)  # the first thing Bob gets, and not before its time
    assert (str(got["from"]), got["type"], got["body"]) == (alice, "chat", "Happy birthday!")
    assert time.time() >= due - 0.1
    told = await eventually(lambda: [m for m in n.messages() if m["frm"] == stack.component], what="the notice")
    assert told[0]["body"] == f"Draft 1 sent to {bob} (its time came): “Happy birthday!”"

    _, done = await draft_form(n, stack, {"to": carol, "text": "Call me when you are back"})
    assert done["notes"] == [["info", f"Draft 2 stored for {carol}: “send draft 2” sends it."]]
    mine = await n.request("execute", jid=stack.component, node="drafts")
    assert mine.get("error") is None, mine
    (choice,) = [f for f in mine["form"]["fields"] if f["var"] == "draft"]
    assert choice["options"] == [[f"2 → {carol}: Call me when you are back", "2"]]
    sent = await n.request("submit", values={"draft": "2", "action": "send"}, action="complete")
    assert sent["status"] == "completed", sent
    ((_, note),) = sent["notes"]
    assert note.startswith(f"Draft 2 sent to {carol}.\nMessage id ")
    c = await connect(carol)
    later = await c.next_message()
    assert (str(later["from"]), later["body"]) == (alice, "Call me when you are back")
    assert later["id"] == note.rsplit(" ", 1)[1].rstrip(".")
    assert await wire_to_marker(b, n, alice) == ["body:Happy birthday!", "body:marker"]  # Carol's draft: not Bob's
