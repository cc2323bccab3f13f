"""GSM-7 / UCS-2 detection, part counting and cutting to length (component/sms/encoding.py)."""

from __future__ import annotations

import pytest

from component.sms.encoding import CUT_GSM, CUT_UCS2, GSM7, UCS2, encoding_of, fit, measure, split


@pytest.mark.parametrize(
    ("text", "encoding", "units", "parts"),
    [
        ("Wherefore art thou Romeo?", GSM7, 25, 1),
        ("x" * 160, GSM7, 160, 1),
        ("x" * 161, GSM7, 161, 2),  # 153 + 8
        ("x" * 306, GSM7, 306, 2),
        ("x" * 307, GSM7, 307, 3),
        ("€" * 80, GSM7, 160, 1),  # extension characters take two septets
        ("€" * 81, GSM7, 162, 2),
        ("Grüße à Vérone", GSM7, 14, 1),  # ü, à, é are in the GSM alphabet
        ("Ça va? ç", UCS2, 8, 1),  # lower-case ç is not
        ("漢" * 70, UCS2, 70, 1),
        ("漢" * 71, UCS2, 71, 2),  # 67 + 4
        ("😀" * 35, UCS2, 70, 1),  # a surrogate pair is two units
        ("😀" * 36, UCS2, 72, 2),
        ("", GSM7, 0, 1),
    ],
    ids=lambda v: v[:12] if isinstance(v, str) else str(v),
)
def test_measure(text: str, encoding: str, units: int, parts: int) -> None:
    m = measure(text)
    assert (m.encoding, m.units, m.parts) == (encoding, units, parts)
    assert encoding_of(text) == encoding


def test_split_never_breaks_an_escape_or_a_surrogate_pair() -> None:
    text = "x" * 152 + "€" + "y" * 10  # the € would straddle the first part's end
    parts = split(text)
    assert parts == ["x" * 152, "€" + "y" * 10]
    emoji = "a" + "😀" * 40
    assert "".join(split(emoji)) == emoji
    assert all(sum(2 if ord(c) > 0xFFFF else 1 for c in p) <= 67 for p in split(emoji))


def test_fit_keeps_short_texts_and_cuts_long_ones_with_a_marker() -> None:
    assert fit("Hello", 1) == "Hello"
    cut = fit("word " * 100, 2)
    assert cut.endswith(CUT_GSM) and measure(cut).parts == 2 and len(cut) > 290
    cut = fit("漢字" * 100, 1)
    assert cut.endswith(CUT_UCS2) and (measure(cut).encoding, measure(cut).parts) == (UCS2, 1)
    with pytest.raises(ValueError):
        fit("x", 0)
