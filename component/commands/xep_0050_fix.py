"""slixmpp's XEP-0050 with one fix (in the spirit of Slidge's ``slixfix``).

With ``action='complete'`` slixmpp always ends the session, even when the
handler asks for the form again (a validation error).  Clients that send
``complete`` (Gajim, nbxmpp) then get a "completed" command with a form they
cannot resubmit.  Here, a handler that leaves ``session['next']`` set keeps the
session executing, exactly as for ``next``.
"""

from __future__ import annotations

from typing import Any

from slixmpp.exceptions import XMPPError
from slixmpp.plugins.base import register_plugin
from slixmpp.plugins.xep_0050.adhoc import XEP_0050, _await_if_needed

from ..namespaces import NS_COMMANDS


class XEP_0050_Courier(XEP_0050):
    name = "xep_0050"

    async def _handle_command_complete(self, iq: Any) -> None:
        session = self.sessions.get(iq["command"]["sessionid"])
        if not session or not session.get("next"):
            return await super()._handle_command_complete(iq)
        interfaces = session["interfaces"]
        results = [s for s in iq["command"]["substanzas"] if s.plugin_attrib in interfaces]
        session = await _await_if_needed(session["next"], results[0] if len(results) == 1 else results, session)
        if session.get("next") is not None:
            await self._process_command_response(iq, session)  # asked again: still executing
            return
        self._cancel_timeout_task(iq["command"]["sessionid"])
        del self.sessions[session["id"]]
        session["next"] = None
        reply = iq.reply()
        reply["command"]["node"] = session["node"]
        reply["command"]["sessionid"] = session["id"]
        reply["command"]["actions"] = []
        reply["command"]["status"] = "completed"
        reply["command"]["notes"] = session["notes"]
        payload = session["payload"] or []
        for item in payload if isinstance(payload, list) else [payload]:
            reply["command"].append(item)
        reply.send()


def install() -> None:
    """Make ``register_plugin("xep_0050")`` load this class."""
    register_plugin(XEP_0050_Courier)


def name_the_default_action(stanza: Any) -> Any:
    """Outgoing filter: ``<actions>`` gets ``execute=`` (XEP-0050 §3.4), which slixmpp omits.

    Without it the default is "next"; when only "complete" is offered, clients
    (nbxmpp/Gajim) see an invalid form and guess the default button.
    """
    if stanza.name == "iq":
        actions = stanza.xml.find(f"{{{NS_COMMANDS}}}command/{{{NS_COMMANDS}}}actions")
        if actions is not None and actions.get("execute") is None:
            offered = [child.tag.split("}")[1] for child in actions]
            default = "next" if "next" in offered else "complete" if "complete" in offered else None
            if default:
                actions.set("execute", default)
    return stanza


__all__ = ["XEP_0050_Courier", "XMPPError", "install"]
