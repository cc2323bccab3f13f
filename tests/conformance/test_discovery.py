"""What a client learns about Courier through XEP-0030."""

from __future__ import annotations

import re
from pathlib import Path

from component.xep.route.stanza import NS as ROUTE


async def test_disco_info_advertises_courier_and_its_namespaces(courier, stack, users, connect) -> None:
    (alice,) = users("alice")
    a = await connect(alice)
    info = await a.plugin["xep_0030"].get_info(jid=stack.component)
    features = set(info["disco_info"]["features"])
    assert ROUTE in features
    assert "http://jabber.org/protocol/disco#info" in features
    # every namespace the README says Courier advertises (SMS off here: its two are not)
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    said = readme.split("Courier's disco#info advertises", 1)[1].split(", and\nwith `sms.enabled`", 1)[0]
    assert set(re.findall(r"`([^`]+)`", said)) <= features
    assert ("component", "generic", None, "Courier") in set(info["disco_info"]["identities"])


async def test_the_server_lists_courier_by_name_for_discover_services(courier, stack, users, connect) -> None:
    """Gajim's way in: Discover Services on the server shows Courier, then Execute Command."""
    (alice,) = users("alice")
    a = await connect(alice)
    items = await a.plugin["xep_0030"].get_items(jid=stack.domain)
    assert (stack.component, None, "Courier (commands and bot)") in set(items["disco_items"]["items"])
