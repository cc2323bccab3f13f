"""Checks that hold for every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conformance.xmpp import CourierProcess
from tests.schemas import sent_violations


@pytest.fixture(autouse=True)
def courier_emits_valid_stanzas() -> Iterator[None]:
    """After each test, every stanza any Courier process sent during it validates
    against the XML Schemas of ``xeps/`` (the elements in our namespaces)."""
    yield
    problems = []
    for process in CourierProcess.made:
        problems += sent_violations(process.unchecked_sent())
    if problems:
        pytest.fail("Courier sent stanzas its own specifications do not allow:\n" + "\n".join(problems[:20]))
