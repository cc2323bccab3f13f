"""E.164 normalisation and number JIDs (component/sms/numbers.py)."""

from __future__ import annotations

import pytest

from component.sms.numbers import BadNumber, display, looks_like_number, normalize, number_jid, number_of


@pytest.mark.parametrize(
    "typed", ["+12025550143", "+1 202-555-0143", "+1 (202) 555 0143", "0012025550143", " +1.202.555.0143 "]
)
def test_every_spelling_is_one_number(typed: str) -> None:
    assert normalize(typed) == "+12025550143"


def test_national_numbers_need_a_region() -> None:
    with pytest.raises(BadNumber, match="international format"):
        normalize("202 555 0143")
    assert normalize("202 555 0143", "us") == "+12025550143"
    assert normalize("06 12 34 56 78", "FR") == "+33612345678"


@pytest.mark.parametrize("bad", ["", "hello", "+1", "+1555123456", "+15551234567", "+999 123"])
def test_invalid_numbers_are_refused(bad: str) -> None:
    with pytest.raises(BadNumber):
        normalize(bad)


def test_number_jids_and_xep_0106() -> None:
    assert number_jid("+12025550143", "courier.shakespeare.lit") == "+12025550143@courier.shakespeare.lit"
    assert number_jid("Verona Tel", "c.lit") == "Verona\\20Tel@c.lit"  # a named sender, escaped
    assert number_of("+1\\20202\\20555\\200143") == "+12025550143"  # escaped spaces read back
    assert looks_like_number("+12025550143") and looks_like_number("0012025550143")
    assert not looks_like_number("book\\20club+juliet") and not looks_like_number("")
    assert display("+12025550143") == "+1 202-555-0143"
