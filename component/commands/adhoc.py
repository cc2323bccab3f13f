"""XEP-0050: every :class:`~component.commands.Command` as an ad-hoc command.

Tolerates every submission style seen in the wild (INTEROP.md): no ``action``
(Profanity), ``next`` where only ``complete`` was offered (Poezio), the whole
form echoed back (Gajim/nbxmpp), values only (Converse).  A command without
fields completes at once (single stage).  Validation errors come back as the
same form with an error note, so the user can correct and resubmit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slixmpp import JID
from slixmpp.exceptions import XMPPError
from slixmpp.plugins.xep_0004 import Form

from ..errors import sentence
from ..namespaces import NS_COMMANDS
from . import Command, CommandError, Context, Field, Result, shape

log = logging.getLogger(__name__)


class AdhocCommands:
    """Registers the commands with slixmpp's xep_0050 plugin."""

    def __init__(self, xmpp: Any, commands: list[Command], context: Callable[[JID], Context]) -> None:
        self.xmpp = xmpp
        self.commands = commands
        self.context = context

    def register(self) -> None:
        """(Re-)register every command; safe to call on each (re)connection."""
        adhoc = self.xmpp.plugin["xep_0050"]
        disco = self.xmpp.plugin["xep_0030"]
        disco.set_items(jid=self.xmpp.boundjid, node=NS_COMMANDS, items=set())
        for command in self.commands:
            adhoc.add_command(node=command.node, name=command.name, handler=self._starter(command))

    def _starter(self, command: Command) -> Callable[..., Any]:
        async def start(iq: Any, session: dict[str, Any]) -> dict[str, Any]:
            ctx = self.context(iq["from"])  # raises forbidden for strangers
            if command.admin and not ctx.admin:
                log.info("Refused admin command %s to %s: not in admin.jids", command.node, iq["from"])
                raise XMPPError("forbidden", f"“{command.name}” is for the server's admins only", etype="auth")
            session["courier_requester"] = ctx.requester
            fields = await command.form(ctx)
            if not fields:
                return await self._finish(command, ctx, {}, session)
            session["payload"] = self._form(command, fields)
            session["next"] = self._submitter(command)
            session["has_next"] = False
            return session

        return start

    def _submitter(self, command: Command) -> Callable[..., Any]:
        async def submit(payload: Any, session: dict[str, Any]) -> dict[str, Any]:
            ctx = self.context(JID(session["courier_requester"]))
            form = payload[0] if isinstance(payload, list) and payload else payload
            values = form.get_values() if isinstance(form, Form) else {}
            if form is not None and isinstance(form, Form) and form["type"] == "cancel":
                session["payload"], session["next"] = None, None
                return session
            return await self._finish(command, ctx, values, session)

        return submit

    async def _finish(
        self, command: Command, ctx: Context, values: dict[str, Any], session: dict[str, Any]
    ) -> dict[str, Any]:
        try:
            missing = [f.label for f in await command.form(ctx) if f.required and not values.get(f.var)]
            if missing:
                raise CommandError("Please fill in: " + ", ".join(missing))
            result = await command.run(ctx, values)
        except Exception as exc:
            reason = sentence(exc)  # the one error boundary (component/errors.py)
            if reason is None:
                raise  # a bug: slixmpp logs it and answers internal-server-error
            # Same form again, with what was submitted, and the reason in a note.
            session["payload"] = self._form(command, await command.form(ctx), values)
            session["notes"] = [("error", shape(reason))]
            session["next"] = self._submitter(command)
            session["has_next"] = False
            return session
        session["payload"] = self._result(command, result)
        session["notes"] = [("info", shape("\n".join(filter(None, (result.text, result.details)))))]
        session["next"] = None
        session["has_next"] = False
        return session

    def _form(self, command: Command, fields: list[Field], values: dict[str, Any] | None = None) -> Form:
        form = self.xmpp.plugin["xep_0004"].make_form(ftype="form", title=command.name)
        for f in fields:
            options = [{"value": v, "label": label} for v, label in f.options]
            value: Any = f.default
            if values and f.var in values and values[f.var] not in (None, ""):
                value = values[f.var]
            if f.type == "boolean":
                value = str(value).lower() in ("1", "true", "on", "yes")
            form.add_field(
                var=f.var, ftype=f.type, label=f.label, desc=f.desc, required=f.required, options=options, value=value
            )
        return form

    def _result(self, command: Command, result: Result) -> Form:
        form = self.xmpp.plugin["xep_0004"].make_form(ftype="result", title=command.name)
        # The text as a field too: some clients (Profanity) show neither notes nor tables.
        first, _, details = shape("\n".join(filter(None, (result.text, result.details)))).partition("\n")
        form.add_field(var="result", ftype="fixed", value=first)
        if details:
            form.add_field(var="details", ftype="fixed", value=details)
        if result.columns:
            for key, label in result.columns:
                form.add_reported(key, label=label, type="text-single")
            for row in result.rows:
                form.add_item({key: row.get(key, "") for key, _ in result.columns})
        return form


def forbidden(jid: JID, domain: str) -> XMPPError:
    log.info("Refused a command from %s: not a user of %s", jid, domain)
    return XMPPError("forbidden", f"Courier serves the users of {domain}", etype="auth")
