"""Run by Debian's /usr/bin/python3 (Gajim's and pyatspi's own Python) for tests/interop/gajim.py.

``settings DIR JID PASSWORD PORT``  write Gajim 1.7's settings database before its first start:
                                    one account, plain TCP to 127.0.0.1:PORT, no first-run questions.
``screen``                          what Gajim shows, read through AT-SPI (the accessibility tree):
                                    one JSON line per showing widget: role, name, text.
``press ROLE NAME``                 do the first action (click, activate) of the showing widget
                                    with that role and name; exit 1 when there is none.
``select NAME``                     select the showing table cell or list item whose name has NAME.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from typing import Any


def settings(root: str, jid: str, password: str, port: str) -> None:
    from gajim.common.settings import CREATE_SQL  # Gajim's own schema, for its version

    user, host = jid.split("@")
    con = sqlite3.connect(f"{root}/settings.sqlite")
    con.executescript(CREATE_SQL)
    app = {"check_for_update": False, "plugins_update_check": False, "show_help_start_chat": False}
    app |= {"ask_online_status": False, "use_keyring": False, "mainwin_width": 1280, "mainwin_height": 900}
    con.execute("UPDATE settings SET settings=? WHERE name='app'", (json.dumps(app),))
    account = {
        "name": user, "hostname": host, "password": password, "resource": "gajim", "active": True,
        "autoconnect": True, "savepass": True, "use_custom_host": True, "custom_host": "127.0.0.1",
        "custom_port": int(port), "custom_type": "PLAIN", "use_plain_connection": True,
        "confirm_unencrypted_connection": False, "send_os_info": False,
    }  # fmt: skip
    con.execute(
        "INSERT INTO account_settings(account, settings) VALUES (?, ?)",
        (user, json.dumps({"account": account, "contact": {}, "group_chat": {}})),
    )
    con.commit()


def _showing() -> Any:
    import pyatspi

    def walk(node: Any) -> Any:
        try:
            if not node.getState().contains(pyatspi.STATE_SHOWING):
                return
            role, name = node.getRoleName(), node.name
        except Exception:  # a widget gone meanwhile
            return
        text = ""
        try:
            text = node.queryText().getText(0, -1)
        except NotImplementedError:
            pass
        except Exception:  # GLib.GError: gone between the state and the text
            return
        yield node, role, name, text
        try:
            children = [node.getChildAtIndex(i) for i in range(node.childCount)]
        except Exception:  # GLib.GError: the widget (or a child) was destroyed while walking
            return
        for child in children:
            if child is not None:
                yield from walk(child)

    for app in pyatspi.Registry.getDesktop(0):
        try:
            if app is None or app.name != "org.gajim.Gajim":
                continue
            windows = [app.getChildAtIndex(i) for i in range(app.childCount)]
        except Exception:  # GLib.GError: an application left the bus meanwhile
            continue
        for window in windows:
            if window is not None:
                yield from walk(window)


def screen() -> None:
    for _, role, name, text in _showing():
        if name or text:
            print(json.dumps({"role": role, "name": name, "text": text}))


def press(role: str, name: str) -> int:
    for node, r, n, _ in _showing():
        if (r, n) == (role, name):
            node.queryAction().doAction(0)
            return 0
    return 1


def select(name: str) -> int:
    for node, role, n, text in _showing():
        if role in ("table cell", "list item") and (name in n or name in text):
            child, parent = node, node.parent  # GTK nests a row's cells in a cell: select the row
            while parent is not None:
                try:
                    parent.querySelection().selectChild(child.getIndexInParent())
                    return 0
                except NotImplementedError:
                    child, parent = parent, parent.parent
            return 1
    return 1


if __name__ == "__main__":
    op, args = sys.argv[1], sys.argv[2:]
    if op == "settings":
        settings(*args)
    elif op == "screen":
        screen()
    elif op == "press":
        sys.exit(press(*args))
    elif op == "select":
        sys.exit(select(*args))
    else:
        sys.exit(f"unknown operation {op}")
