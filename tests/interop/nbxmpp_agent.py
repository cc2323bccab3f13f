"""An nbxmpp 7.4 client (Gajim's library) for the interop tests, run by
``.cache/interop/nbxmpp-venv/bin/python`` (Debian's python3 with python3-nbxmpp's
GObject and libsoup).  Not imported by pytest: :mod:`tests.interop.nbxmpp_client`
starts it and talks to it in JSON lines.

stdin, one command a line::

    {"op": "send", "to": JID, "body": TEXT, "id": ID}                 as Gajim: origin-id, receipt request, markable
    {"op": "correct", "to": JID, "body": TEXT, "id": ID, "replace": ORIGINAL}
    {"op": "commands", "jid": JID}                                    disco#items, parsed by nbxmpp's AdHoc module
    {"op": "execute", "jid": JID, "node": NODE}
    {"op": "submit", "values": {VAR: VALUE}, "action": "complete"}    the whole last form echoed back, as Gajim does
    {"op": "quit"}

stdout, one event a line: ``{"event": "connected"}``, ``{"event": "message", …}``,
``{"event": "result", "op": …, …}`` or ``{"event": "error", "op": …, "error": …}``
(nbxmpp's own exception, e.g. ``MalformedStanzaError`` for a reply missing
``status``, ``sessionid`` or ``node``).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from gi.repository import GLib
from nbxmpp.client import Client
from nbxmpp.const import AdHocAction, ConnectionProtocol, ConnectionType
from nbxmpp.modules.dataforms import extend_form
from nbxmpp.namespaces import Namespace
from nbxmpp.protocol import JID, Message, Presence
from nbxmpp.structs import AdHocCommand, StanzaHandler


def emit(**event: Any) -> None:
    sys.stdout.write(json.dumps(event, default=str) + "\n")
    sys.stdout.flush()


def form_json(node: Any) -> dict[str, Any] | None:
    """A data form as the tests see it: type, title, fields (var, type, label, value, options, required)."""
    if node is None:
        return None
    form = extend_form(node=node)
    out: dict[str, Any] = {"type": form.type_, "title": form.title, "fields": [], "xml": str(node)}
    if hasattr(form, "iter_fields"):
        for f in form.iter_fields():
            field: dict[str, Any] = {"var": f.var, "type": f.type_, "label": f.label, "required": f.required}
            field["value"] = f.values if hasattr(f, "values") else getattr(f, "value", None)
            if hasattr(f, "options"):
                field["options"] = [list(o) for o in f.options]
            out["fields"].append(field)
    return out


def command_json(cmd: AdHocCommand) -> dict[str, Any]:
    return {
        "node": cmd.node,
        "sessionid": cmd.sessionid,
        "status": cmd.status.value if cmd.status else None,
        "actions": sorted(a.value for a in cmd.actions or ()),
        "default": cmd.default.value if cmd.default else None,
        "notes": [[n.type.value, n.text] for n in cmd.notes or ()],
        "form": form_json(cmd.data),
    }


class Agent:
    def __init__(self, jid: str, password: str, port: int) -> None:
        self.jid = JID.from_string(jid)
        self.loop = GLib.MainLoop()
        self.client = Client()
        self.client.set_domain(self.jid.domain)
        self.client.set_username(self.jid.localpart)
        self.client.set_resource("nbxmpp")
        self.client.set_password(password)
        self.client.set_custom_host(f"127.0.0.1:{port}", ConnectionProtocol.TCP, ConnectionType.PLAIN)
        self.client.subscribe("connected", self._on_connected)
        self.client.subscribe("connection-failed", self._on_failed)
        self.client.subscribe("disconnected", self._on_disconnected)
        self.client.register_handler(StanzaHandler(name="message", callback=self._on_message, priority=50))
        self.last: AdHocCommand | None = None
        self.pending_op = ""

    def run(self) -> None:
        self.client.connect()
        GLib.io_add_watch(GLib.IOChannel.unix_new(sys.stdin.fileno()), GLib.IO_IN | GLib.IO_HUP, self._on_stdin)
        self.loop.run()

    # -- connection -------------------------------------------------------------------------------

    def _on_connected(self, _client: Client, _signal: str) -> None:
        self.client.send_stanza(Presence())
        emit(event="connected", jid=str(self.client.get_bound_jid()))

    def _on_failed(self, _client: Client, _signal: str) -> None:
        emit(event="connection-failed")
        self.loop.quit()

    def _on_disconnected(self, _client: Client, _signal: str) -> None:
        emit(event="disconnected")
        self.loop.quit()

    def _on_message(self, _client: Client, stanza: Any, properties: Any) -> None:
        emit(
            event="message",
            frm=str(properties.jid) if properties.jid else None,
            id=properties.id,
            body=properties.body,
            type=str(properties.type.value) if properties.type else None,
            xml=str(stanza),
        )

    # -- commands from the test -------------------------------------------------------------------

    def _on_stdin(self, channel: Any, condition: int) -> bool:
        line = sys.stdin.readline()
        if not line:
            self.client.disconnect()
            GLib.timeout_add(2000, self.loop.quit)
            return False
        cmd = json.loads(line)
        try:
            getattr(self, "op_" + cmd["op"])(cmd)
        except Exception as exc:  # report, keep running
            emit(event="error", op=cmd["op"], error=f"{type(exc).__name__}: {exc}")
        return True

    def op_quit(self, _cmd: dict[str, Any]) -> None:
        self.client.disconnect()
        GLib.timeout_add(2000, self.loop.quit)

    def _message(self, cmd: dict[str, Any]) -> Message:
        message = Message(to=JID.from_string(cmd["to"]), typ="chat", body=cmd["body"])
        message.setID(cmd["id"])
        message.setOriginID(cmd["id"])
        message.setTag("request", namespace=Namespace.RECEIPTS)
        message.setTag("markable", namespace=Namespace.CHATMARKERS)
        return message

    def op_send(self, cmd: dict[str, Any]) -> None:
        message = self._message(cmd)
        self.client.send_stanza(message)
        emit(event="result", op="send", xml=str(message))

    def op_correct(self, cmd: dict[str, Any]) -> None:
        message = self._message(cmd)
        message.setTag("replace", attrs={"id": cmd["replace"]}, namespace=Namespace.CORRECT)
        self.client.send_stanza(message)
        emit(event="result", op="correct", xml=str(message))

    def op_commands(self, cmd: dict[str, Any]) -> None:
        self.pending_op = "commands"
        self.client.get_module("AdHoc").request_command_list(cmd["jid"], callback=self._on_command_list)

    def _on_command_list(self, task: Any) -> None:
        try:
            commands = task.finish()
        except Exception as exc:
            emit(event="error", op="commands", error=f"{type(exc).__name__}: {exc}")
            return
        emit(event="result", op="commands", commands=[[c.node, c.name] for c in commands])

    def op_execute(self, cmd: dict[str, Any]) -> None:
        command = AdHocCommand(jid=JID.from_string(cmd["jid"]), node=cmd["node"], name=None)
        self.pending_op = "execute"
        self.client.get_module("AdHoc").execute_command(command, callback=self._on_command)

    def op_submit(self, cmd: dict[str, Any]) -> None:
        """Gajim's way: the form as received, values changed in place, type=submit, action=complete."""
        assert self.last is not None and self.last.data is not None, "no form to submit"
        form = extend_form(node=self.last.data)
        for var, value in cmd.get("values", {}).items():
            field = form[var]
            if field.type_ == "boolean":
                field.value = bool(value)
            else:
                field.value = value
        form.type_ = "submit"
        self.pending_op = "submit"
        action = AdHocAction(cmd.get("action", "complete"))
        self.client.get_module("AdHoc").execute_command(
            self.last, action=action, dataform=form, callback=self._on_command
        )
        emit(event="sent-form", xml=str(form))

    def _on_command(self, task: Any) -> None:
        try:
            result = task.finish()
        except Exception as exc:
            emit(event="error", op=self.pending_op, error=f"{type(exc).__name__}: {exc}")
            return
        self.last = result
        emit(event="result", op=self.pending_op, **command_json(result))


if __name__ == "__main__":
    Agent(sys.argv[1], sys.argv[2], int(sys.argv[3])).run()
