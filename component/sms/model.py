"""SMS fallback (P3): the values the core trades in — its settings, a user's number status,
its errors — and what it needs of the XMPP side (:class:`SmsDelivery`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Protocol

from .numbers import display

HOUR = 3600.0


class SmsError(Exception):
    """An expected failure: an XMPP error condition and a sentence for the user."""

    def __init__(self, condition: str, text: str) -> None:
        super().__init__(text)
        self.condition = condition
        self.text = text


@dataclass(frozen=True, slots=True)
class SmsSettings:
    """The ``sms.*`` options the core uses (component/config.py documents them)."""

    sender: str = ""  # the gateway's own number: codes, and users without a verified number
    region: str = ""  # numbers without "+" are read in this region
    max_attempts: int = 5
    retry_delay: float = 2.0  # first back-off; doubles with every attempt
    retry_max: float = 300.0
    fallback_delay: float = 0.0  # how long a held message waits before it goes as SMS
    max_parts: int = 6
    code_ttl: float = 600.0
    codes_per_hour: int = 3
    code_tries: int = 5
    parts_per_hour: int = 30  # SMS parts one user may cause per hour (fallback + direct)
    #: sent instead of an end-to-end encrypted message, which stays held for XMPP
    encrypted_notice: str = "{sender} sent you an end-to-end encrypted message; open your XMPP app to read it."

    @classmethod
    def from_config(cls, config: Any) -> SmsSettings:
        return cls(
            sender=str(config["sms.sender"]),
            region=str(config["sms.region"]),
            max_attempts=int(config["sms.max_attempts"]),
            retry_delay=float(config["sms.retry_delay"]),
            fallback_delay=float(config["sms.fallback_delay"]),
            max_parts=int(config["sms.max_parts"]),
            code_ttl=float(config["sms.code_ttl"]),
            codes_per_hour=int(config["sms.codes_per_hour"]),
            parts_per_hour=int(config["sms.parts_per_hour"]),
            encrypted_notice=str(config["sms.encrypted_notice"]),
        )


@dataclass(frozen=True, slots=True)
class NumberStatus:
    """What a user has: an active number (and fallback), a number waiting for its code."""

    number: str | None
    fallback: bool
    pending: str | None
    expires: float | None

    def describe(self) -> str:
        if self.number:
            text = f"Your number: {display(self.number)} (verified). SMS fallback: " + (
                "on — messages sent to you while you are offline come as SMS."
                if self.fallback
                else "off — messages wait until you are online."
            )
        else:
            text = "You have no verified phone number."
        if self.pending:
            text += f" Waiting for the code sent to {display(self.pending)}: send “verify CODE”."
        return text


class SmsDelivery(Protocol):
    """What the core needs from the XMPP side."""

    def inbound(self, number: str, user: str, text: str) -> None:
        """Deliver an SMS from *number* (E.164, or the sender as the gateway gave it) to *user*."""
        ...

    def receipt(self, number: str, user: str, msg_id: str) -> None:
        """Tell *user* (XEP-0184) that their message *msg_id* to *number* was delivered."""
        ...

    def notify(self, user: str, text: str) -> None:
        """A line from Courier to *user* (e.g. a verification code could not be sent)."""
        ...


def code_hash(user: str, number: str, code: str) -> str:
    return hashlib.sha256(f"{user}\n{number}\n{code}".encode()).hexdigest()
