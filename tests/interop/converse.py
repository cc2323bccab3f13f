"""Converse.js 14 driven like a person: typing in its message box, pressing
Enter and ↑ (edit the last message), its message menu's "Retract", its
settings dialog's "Commands" tab.  Converse itself builds every stanza.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from .browser import Chromium, Page

KEYS = {"Enter": 13, "ArrowUp": 38, "Escape": 27}


class Converse:
    """One logged-in Converse.js (its own browser tab and storage)."""

    def __init__(self, page: Page, jid: str) -> None:
        self.page = page
        self.jid = jid

    @classmethod
    async def login(cls, browser: Chromium, stack: Any, jid: str, password: str) -> Converse:
        page = await browser.new_page()
        settings = {"jid": jid, "password": password, "websocket_url": stack.websocket_url}
        await page.goto(stack.web_url + "#" + urllib.parse.quote(json.dumps(settings)))
        await page.wait_for("window.courier !== undefined && courier.connected", 15, f"Converse logged in as {jid}")
        await page.js("courier.api.waitUntil('rosterContactsFetched').then(() => true)")
        return cls(page, jid)

    # -- what Converse sent ------------------------------------------------------------------------

    async def sent(self, name: str = "message") -> list[str]:
        """Every stanza Converse wrote to the websocket, as XML, of one kind."""
        return [x for x in await self.page.js("courier.sent") if x.startswith(f"<{name} ")]

    # -- chats ---------------------------------------------------------------------------------------

    def _textarea(self, jid: str) -> str:
        return f"document.querySelector({json.dumps(f'converse-chat[jid={json.dumps(jid)}] .chat-textarea')})"

    async def open_chat(self, jid: str) -> None:
        await self.page.js(f"courier.api.chats.open({json.dumps(jid)}, {{}}, true).then(() => true)")
        await self.page.wait_for(f"!!{self._textarea(jid)}", 10, f"the chat with {jid}")

    async def look_at(self, jid: str, displayed: str | None = None, timeout: float = 15) -> dict[str, Any]:
        """The user looks at the open chat with *jid*, scrolled to its end.  Converse marks a
        message displayed as it arrives only if the chat is not hidden or scrolled up at that
        moment (``isHidden``); otherwise it counts it unread and marks it when the user looks
        (``clearUnreadMsgCounter``), which on a loaded machine, while the chat paints, happens.
        Converse decides between the two only after the message is in the chat (an awaited
        ``afterMessageCreated`` hook lies between), so a look at that moment finds nothing
        unread and the message is counted unread just after: with *displayed* (a message id)
        the user keeps looking until Converse has sent its "displayed" marker for it.
        Returns what Converse saw at the first look (unread count, scrolled, hidden), for a
        failing test to say."""
        chat = f"courier.chat({json.dumps(jid)})"
        look = "c.ui.set('scrolled', false); c.clearUnreadMsgCounter();"
        seen = await self.page.js(
            f"(() => {{ const c = {chat}; const seen = {{unread: c.get('num_unread'), "
            f"scrolled: !!c.ui.get('scrolled'), hidden: !!c.get('hidden') || document.hidden}}; "
            f"{look} return seen; }})()"
        )
        if displayed is not None:
            marker = json.dumps(f'id="{displayed}"')
            await self.page.wait_for(
                f"(() => {{ if (courier.sent.some(x => x.startsWith('<message ') && x.includes('<displayed ')"
                f" && x.includes({marker}))) return true; const c = {chat}; {look} return false; }})()",
                timeout,
                f"Converse marking {displayed} displayed (first look: {seen})",
            )
        return seen

    async def key(self, key: str) -> None:
        for kind in ("keyDown", "keyUp"):
            await self.page.send(
                "Input.dispatchKeyEvent",
                {"type": kind, "key": key, "code": key, "windowsVirtualKeyCode": KEYS[key]},
            )

    async def type(self, jid: str, text: str, *, replace: bool = False) -> None:
        textarea = self._textarea(jid)
        select = f"{textarea}.select(), " if replace else ""
        await self.page.js(f"{textarea}.focus(), {select}true")
        await self.page.send("Input.insertText", {"text": text})

    async def say(self, jid: str, text: str) -> dict[str, Any]:
        """Type *text* in the chat with *jid* and press Enter; return the message as Converse stored it."""
        await self.type(jid, text)
        await self.key("Enter")
        return await self.page.wait_for(
            f"courier.chat({json.dumps(jid)}).messages.filter(m => m.get('sender') === 'me')"
            f".map(m => m.toJSON()).find(m => m.body === {json.dumps(text)})",
            5,
            f"{text!r} sent",
        )

    async def write(self, to: str, body: str) -> None:
        """A message in the chat with *to* (opened if it is not), as :meth:`say`."""
        await self.open_chat(to)
        await self.say(to, body)

    async def correct_last(self, jid: str, text: str) -> None:
        """↑ in the empty message box (Converse's "edit last message"), replace the text, Enter."""
        await self.type(jid, "")
        await self.key("ArrowUp")
        await self.page.wait_for(f"courier.chat({json.dumps(jid)}).get('correcting')", 5, "correcting mode")
        await self.type(jid, text, replace=True)
        await self.key("Enter")
        await self.page.wait_for(f"!courier.chat({json.dumps(jid)}).get('correcting')", 5, "correction sent")

    async def retract(self, jid: str, msgid: str) -> None:
        """The message's menu → Retract → Confirm, as in Converse's UI."""
        item = (
            f'document.querySelector(\'converse-chat[jid="{jid}"] .message[data-msgid="{msgid}"]\')'
            ".closest('converse-chat-message').querySelector('.chat-msg__action-retract')"
        )
        await self.page.wait_for(f"!!{item}", 5, "the Retract item in the message menu")
        await self.page.js(f"{item}.click(), true")
        confirm = "document.querySelector('.modal.show form.confirm button[type=submit]')"
        await self.page.wait_for(f"!!{confirm}", 5, "the confirmation dialog")
        await self.page.js(f"{confirm}.click(), true")
        await self.page.wait_for(
            f"courier.chat({json.dumps(jid)}).messages.findWhere({{msgid: {json.dumps(msgid)}}}).get('retracted')",
            5,
            "retracted",
        )

    async def wait_message_from(self, jid: str, predicate: str = "true", timeout: float = 10) -> dict[str, Any]:
        """The first message from *jid* for which JS *predicate* (on ``m``, the attributes) holds."""
        return await self.page.wait_for(
            f"(courier.chat({json.dumps(jid)})?.messages.toJSON() ?? [])"
            f".find(m => m.sender === 'them' && (m => {predicate})(m))",
            timeout,
            f"a message from {jid}",
        )

    # -- ad-hoc commands: settings (cog) → Commands tab --------------------------------------------

    ADHOC = "document.querySelector('converse-adhoc-commands')"

    async def adhoc_list(self, jid: str) -> list[dict[str, str]]:
        """Open the Commands tab, enter *jid*, press "List available commands"; the commands shown."""
        page = self.page
        await page.wait_for("!!document.querySelector('.show-client-info')", 5, "the settings button")
        await page.js("document.querySelector('.show-client-info').click(), true")
        await page.wait_for("!!document.querySelector('#commands-tab')", 5, "the Commands tab")
        await page.js("document.querySelector('#commands-tab').click(), true")
        await page.wait_for(f"!!{self.ADHOC}?.querySelector('input[name=jid]')", 5, "the Commands form")
        await page.js(f"{self.ADHOC}.querySelector('input[name=jid]').select(), true")
        await page.send("Input.insertText", {"text": jid})
        await page.js(f"{self.ADHOC}.querySelector('form').requestSubmit(), true")
        await page.wait_for(
            f"{self.ADHOC}.querySelector('.list-group-item.active')?.textContent.trim()"
            f" || {self.ADHOC}.querySelector('.alert')?.textContent.trim()",
            5,
            "the list of commands (or Converse's alert)",
        )
        return list(
            await page.js(
                f"Array.from({self.ADHOC}.querySelectorAll('a[data-command-node]'))"
                ".map(a => ({node: a.dataset.commandNode, name: a.dataset.commandName}))"
            )
        )

    async def adhoc_close(self) -> None:
        """Close the settings dialog (its ✕), as a person does before going back to a chat."""
        await self.page.js("document.querySelector('.modal.show .modal-header [data-bs-dismiss=modal]').click(), true")
        await self.page.wait_for("!document.querySelector('.modal.show')", 5, "the dialog closed")

    async def adhoc_alert(self) -> str:
        return str(await self.page.js(f"{self.ADHOC}.querySelector('.alert')?.textContent.trim() ?? ''"))

    def _command(self, node: str) -> str:
        return f"{self.ADHOC}.querySelector('a[data-command-node={json.dumps(node)}]').closest('li')"

    async def adhoc_open(self, node: str) -> dict[str, Any]:
        """Click a command in the list: Converse executes it and shows the first stage."""
        await self.page.js(f"{self._command(node)}.querySelector('a').click(), true")
        await self.page.wait_for(f"!!{self._command(node)}.querySelector('form')", 5, f"the {node} form")
        return await self.adhoc_view(node)

    async def adhoc_view(self, node: str) -> dict[str, Any]:
        """What the command's form shows: alerts, fields (name → value), buttons, table rows."""
        return dict(
            await self.page.js(
                f"""(() => {{
                const li = {self._command(node)};
                const form = li.querySelector('form');
                const fields = {{}};
                for (const i of form.querySelectorAll('input[name], select[name], textarea[name]')) {{
                    if (['command_node', 'command_jid'].includes(i.name)) continue;
                    fields[i.name] = i.type === 'checkbox' ? i.checked : i.value;
                }}
                const labels = Array.from(form.querySelectorAll('label')).map(l => l.textContent.trim());
                return {{
                    alerts: Array.from(li.querySelectorAll('.alert')).map(a => a.textContent.trim()),
                    fields, labels,
                    buttons: Array.from(form.querySelectorAll('input[type=button]')).map(b => b.value),
                    rows: Array.from(form.querySelectorAll('tbody tr')).map(
                        tr => Array.from(tr.querySelectorAll('td')).map(td => td.textContent.trim())),
                    text: form.textContent.replace(/\\s+/g, ' ').trim(),
                }};
            }})()"""
            )
        )

    async def adhoc_fill(self, node: str, values: dict[str, Any]) -> None:
        for name, value in values.items():
            el = f"{self._command(node)}.querySelector('[name={json.dumps(name)}]')"
            if isinstance(value, bool):
                await self.page.js(f"{el}.checked = {json.dumps(value)}, true")
            else:
                await self.page.js(f"{el}.value = {json.dumps(value)}, true")

    async def adhoc_press(self, node: str, button: str) -> None:
        """Press one of the form's buttons ("Complete", "Next", …)."""
        await self.page.js(
            f"Array.from({self._command(node)}.querySelectorAll('input[type=button]'))"
            f".find(b => b.value === {json.dumps(button)}).click(), true"
        )
