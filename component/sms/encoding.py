"""SMS text encoding and part counting (pure; no I/O).

An SMS carries 140 octets: 160 characters of the GSM 03.38 7-bit alphabet, or
70 UTF-16 code units (UCS-2) when any character is outside it.  A longer text
is sent as a concatenated SMS whose parts each lose room to the UDH: 153
GSM-7 characters or 67 UCS-2 units a part.  Characters of the GSM extension
table (``€ [ ] { } \\ ^ ~ |`` and form feed) take two septets, and neither an
escape pair nor a surrogate pair is ever split between parts.

Courier sends long texts the way SMS does (the gateway concatenates; Kannel
with ``concatenation = true``), up to a configured number of parts; a text
that needs more is cut to fit and ends with :data:`CUT_GSM` or
:data:`CUT_UCS2`, so the reader sees that something is missing.
"""

from __future__ import annotations

from dataclasses import dataclass

GSM7 = "GSM-7"
UCS2 = "UCS-2"

#: GSM 03.38 basic character set (one septet each).
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: GSM 03.38 extension table (an escape septet plus one: two septets each).
GSM_EXTENDED = frozenset("\f^{}\\[~]|€")

SINGLE = {GSM7: 160, UCS2: 70}
PART = {GSM7: 153, UCS2: 67}
CUT_GSM = "..."
CUT_UCS2 = "…"


@dataclass(frozen=True, slots=True)
class Measure:
    """How a text travels: its encoding, its size in septets / UTF-16 units, and its parts."""

    encoding: str  # GSM-7 | UCS-2
    units: int
    parts: int


def encoding_of(text: str) -> str:
    """GSM-7 when every character is in the GSM alphabet (with its extension), else UCS-2."""
    return GSM7 if all(c in GSM_BASIC or c in GSM_EXTENDED for c in text) else UCS2


def _units(c: str, encoding: str) -> int:
    if encoding == GSM7:
        return 2 if c in GSM_EXTENDED else 1
    return 2 if ord(c) > 0xFFFF else 1  # a surrogate pair


def split(text: str) -> list[str]:
    """*text* cut into the parts of a (concatenated) SMS, as a gateway does."""
    encoding = encoding_of(text)
    if sum(_units(c, encoding) for c in text) <= SINGLE[encoding]:
        return [text]
    room = PART[encoding]
    parts: list[str] = []
    current: list[str] = []
    used = 0
    for c in text:
        n = _units(c, encoding)
        if used + n > room:
            parts.append("".join(current))
            current, used = [], 0
        current.append(c)
        used += n
    if current:
        parts.append("".join(current))
    return parts


def measure(text: str) -> Measure:
    """Encoding, size and number of parts of *text*."""
    encoding = encoding_of(text)
    units = sum(_units(c, encoding) for c in text)
    return Measure(encoding, units, len(split(text)) if text else 1)


def fit(text: str, max_parts: int) -> str:
    """*text* if it fits in *max_parts* parts; else cut to fit, ending with the cut marker."""
    if max_parts < 1:
        raise ValueError("max_parts must be at least 1")
    if measure(text).parts <= max_parts:
        return text
    marker = CUT_GSM if encoding_of(text) == GSM7 else CUT_UCS2
    low, high = 0, len(text)
    while low < high:  # the longest prefix that fits with the marker
        mid = (low + high + 1) // 2
        if measure(text[:mid].rstrip() + marker).parts <= max_parts:
            low = mid
        else:
            high = mid - 1
    return text[:low].rstrip() + marker
