"""Interop fixtures: the conformance stack (real Prosody, real Courier, fresh users),
plus what browser clients need (websocket, and Converse.js served over HTTP), and
the third-party clients themselves.

Each client is found where ``tests/interop/install.sh`` puts it (``make test``
runs it).  A client that is not installed makes its tests skip with the reason
— unless ``COURIER_INTEROP_REQUIRED=1`` (set by ``.ci/run``), where it fails.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from component import prosody
from tests.conformance.conftest import PASSWORD, connect, courier, users  # noqa: F401  (fixtures)
from tests.conformance.helpers import eventually, hops, states, wire, wire_to_marker  # noqa: F401  (helpers)
from tests.conformance.xmpp import Client, CourierProcess, Writer

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache" / "interop"
CONVERSE_VERSION = "14.0.0"
CONVERSE_DIST = CACHE / f"converse.js-{CONVERSE_VERSION}" / "dist"
NBXMPP_PYTHON = CACHE / "nbxmpp-venv" / "bin" / "python"
HERE = Path(__file__).resolve().parent


def require(what: str, present: bool) -> None:
    """Skip (or, in CI, fail) when a third-party client is not on this machine."""
    if present:
        return
    reason = f"{what} is not installed: run `sh tests/interop/install.sh` (make test does)"
    if os.environ.get("COURIER_INTEROP_REQUIRED") == "1":
        pytest.fail(reason + " — COURIER_INTEROP_REQUIRED=1", pytrace=False)
    pytest.skip(reason)


def installed(program: str, package: str) -> str:
    """The path of *program* (from Debian's *package*), or skip/fail as :func:`require` does."""
    path = shutil.which(program) or (f"/usr/bin/{program}" if Path(f"/usr/bin/{program}").exists() else None)
    require(f"{program} (apt: {package})", path is not None)
    assert path is not None
    return path


@dataclass
class WebProsodySetup(prosody.ProsodySetup):
    """prosody-config/ as rendered for Courier, plus a websocket endpoint and
    ``http_files`` serving Converse.js, on a loopback HTTP port (tests only)."""

    http_port: int = 0
    web_root: Path = Path("web")

    @property
    def websocket_url(self) -> str:
        return f"ws://127.0.0.1:{self.http_port}/xmpp-websocket"

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/files/"

    def render(self) -> Path:
        path = super().render()
        text = path.read_text()
        modules_anchor = "modules_enabled = {\n"
        host_anchor = '\nVirtualHost "'
        assert text.count(modules_anchor) >= 1 and host_anchor in text, "prosody.cfg.lua.in changed its shape"
        text = text.replace(modules_anchor, modules_anchor + '\t"websocket"; "http_files";\n', 1)
        web = (
            "\n-- Added by tests/interop for browser clients (Converse.js).\n"
            f"http_ports = {{ {self.http_port} }}\n"
            'http_interfaces = { "127.0.0.1" }\n'
            f'http_default_host = "{self.domain}"\n'
            "https_ports = { }\n"
            "consider_websocket_secure = true\n"
            f'http_files_dir = "{self.web_root}"\n'
        )
        text = text.replace(host_anchor, web + host_anchor, 1)
        path.write_text(text)
        return path


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebProsodySetup]:
    """Debian's Prosody with Courier's config, websocket and Converse.js's files, on free loopback ports."""
    web_root = tmp_path_factory.mktemp("web")
    shutil.copy(HERE / "converse.html", web_root / "index.html")
    if CONVERSE_DIST.is_dir():
        (web_root / "dist").symlink_to(CONVERSE_DIST)
    setup = WebProsodySetup(
        data=tmp_path_factory.mktemp("prosody"),
        c2s_port=prosody.free_port(),
        component_port=prosody.free_port(),
        ack_timeout=3.0,
        log_level="debug",
        http_port=prosody.free_port(),
        web_root=web_root,
    )
    setup.render()
    proc = prosody.start(setup)
    yield setup
    prosody.stop(proc)


async def befriend(a: Client, b: Client, timeout: float = 5.0) -> None:
    """Mutual presence subscription between two logged-in slixmpp clients, as the server's
    rosters say (Converse sends chat markers only to contacts subscribed to its presence)."""
    a.send_presence(pto=b.boundjid.bare, ptype="subscribe")  # slixmpp authorises and subscribes back
    deadline = time.monotonic() + timeout
    for me, other in ((a, b), (b, a)):
        while True:
            await me.get_roster()
            if me.client_roster[other.boundjid.bare]["subscription"] == "both":
                break
            assert time.monotonic() < deadline, f"{me.boundjid.bare} and {other.boundjid.bare} not subscribed"
            await asyncio.sleep(0.1)


def courier_edited(process: CourierProcess, sender: str, msg_id: str) -> bool:
    """Whether Courier recorded the "edited" hop: a correction absorbed into the held message."""
    return "edited" in [label for label, _, _ in hops(process, sender, msg_id)]


async def with_body(client: Client) -> Any:
    """The first message with a body (a client's chat states, stored offline by Prosody, come too)."""
    return await eventually(lambda: next((m for m in client.all_received if m["body"]), None), what="a body")


async def corrected_when_online(
    process: CourierProcess, login: Any, writer: Writer, sender: str, recipient: str, msg_id: str, text: str
) -> Any:
    """The end of every client's "hold and correct": the correction of held *msg_id* was absorbed
    (the "edited" hop; still one held message); *recipient* connects and gets one message from
    *sender*, id *msg_id*, with the corrected *text* and no <replace/>; nothing else came before
    the sender's next message (:func:`wire_to_marker`).  The message the recipient got."""
    await eventually(lambda: courier_edited(process, sender, msg_id), what="the correction absorbed")
    assert states(process, sender) == {msg_id: "held"}  # absorbed, not passed on as a second message
    b = await login(recipient)
    got = await with_body(b)
    assert (str(got["from"]), got["id"], got["body"]) == (sender, msg_id, text)
    assert got.xml.find("{urn:xmpp:message-correct:0}replace") is None
    assert await wire_to_marker(b, writer, sender) == [f"body:{text}", "body:marker"]
    return got
