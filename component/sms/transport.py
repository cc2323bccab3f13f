"""The SMS transport interface: what Courier's core needs from any SMS gateway.

A transport only moves messages.  It is started with two callbacks, one for
mobile-originated SMS and one for delivery reports, sends one SMS at a time
(returning the ids its reports will name) and stops.  Everything else — E.164
normalisation, encoding and part counting, duplicate filtering, retries with
back-off, rate limits and the persistent map from transport id to message — is
the core's (:mod:`component.sms.service`).

:meth:`SmsTransport.send` says how an attempt ended by what it raises:

- returns: the gateway accepted the SMS;
- :class:`GatewayUnavailable`: it certainly did **not** accept it (no
  connection, a temporary refusal): the core retries with back-off;
- :class:`GatewayRejected`: it refused the SMS for good (credentials, bad
  number): the core fails it at once;
- :class:`GatewayUncertain`: the request may or may not have been taken (it
  timed out after it was sent): the core never resends it, so that nothing is
  sent twice, and relies on a delivery report to tell.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class OutgoingSms:
    """One SMS to send.  *ref* is the core's id for it; a transport that can carry an id of
    its choosing to its reports (Kannel's ``dlr-url``) uses *ref* as the transport id."""

    ref: str
    sender: str  # E.164, or "" for the gateway's default sender
    recipient: str  # E.164
    text: str
    encoding: str  # GSM-7 | UCS-2 (component.sms.encoding)


@dataclass(frozen=True, slots=True)
class InboundSms:
    """A mobile-originated SMS, as the gateway passed it (numbers not normalised yet)."""

    transport_id: str  # the gateway's id of this SMS ("" if it has none)
    sender: str
    recipient: str
    text: str


#: Delivery-report outcomes.
DELIVERED, FAILED, ACCEPTED, BUFFERED = "delivered", "failed", "accepted", "buffered"


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What the gateway reports about a sent SMS: delivered, failed, accepted (by the
    SMSC, not yet delivered) or buffered (the phone is unreachable, the SMSC retries)."""

    transport_id: str
    outcome: str
    detail: str = ""


class GatewayUnavailable(Exception):
    """The gateway did not take the SMS (e.g. connection refused): safe to retry."""


class GatewayRejected(Exception):
    """The gateway refused the SMS for good: retrying cannot help."""


class GatewayUncertain(Exception):
    """The gateway may have taken the SMS: do not resend (a report may still come)."""


InboundHandler = Callable[[InboundSms], Awaitable[None]]
ReportHandler = Callable[[DeliveryReport], Awaitable[None]]


class SmsTransport(ABC):
    """One SMS gateway."""

    name: str = "sms"

    @abstractmethod
    async def start(self, on_inbound: InboundHandler, on_report: ReportHandler) -> None:
        """Start receiving: every inbound SMS and delivery report goes to the callbacks.  A
        callback that raises means "not taken": the transport tells the gateway to try again."""

    @abstractmethod
    async def send(self, sms: OutgoingSms) -> list[str]:
        """Submit *sms*; return the transport ids its delivery reports will carry."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop receiving and close connections."""
