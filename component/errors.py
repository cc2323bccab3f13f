"""The one error boundary: what an expected failure of a service becomes for the user.

Every service says what went wrong with an exception of its own — the pipeline's
:class:`~.delivery.ports.NotFound`, :class:`~.delivery.ports.TooLate`,
:class:`~.delivery.ports.Encrypted`, :class:`~.delivery.ports.Invalid`; the drafts'
:class:`~.when.DraftError` family; :class:`~.sms.model.SmsError`;
:class:`~.lists.model.ListError`; the store's :class:`~.store.errors.StoreUnavailable`; a
command's :class:`~.commands.CommandError`.  :func:`failure` is the one table that maps
each to what the user gets:

- over XMPP (the IQ handlers of every courier-* plugin, messages to list and phone-number
  JIDs): an XMPP error — :func:`xmpp_error`, or ``with as_xmpp_errors():`` around a call;
- as a command (XEP-0050 and the chat bot, :mod:`.commands.adhoc`, :mod:`.commands.bot`):
  a sentence — :func:`sentence`.

Anything else is a bug: it is not caught here (slixmpp answers ``internal-server-error``
and logs it; the bot says it failed and logs it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from slixmpp.exceptions import XMPPError
from slixmpp.types import ErrorConditions, ErrorTypes

from .commands import CommandError
from .delivery.ports import Encrypted, Invalid, NotFound, PassedOn, TooLate
from .lists.model import ListError
from .namespaces import NS_HOPS
from .sms.model import SmsError
from .store.errors import StoreUnavailable
from .when import DraftError, DraftLimit, DraftNotFound, DraftTooLate

#: The error type of each condition an SMS failure names (RFC 6120 §8.3.2).
SMS_TYPES: dict[str, ErrorTypes] = {
    "bad-request": "modify",
    "not-acceptable": "modify",
    "resource-constraint": "wait",
}

#: What the bot says when a command failed for a reason that is not the user's (a bug; logged).
SORRY = "Sorry, that failed on the server; it has been logged."


@dataclass(frozen=True, slots=True)
class Failure:
    """An expected failure, as the user gets it."""

    condition: ErrorConditions  # the XMPP error condition
    text: str  # the XMPP error's text
    etype: ErrorTypes = "cancel"
    said: str | None = None  # the sentence for a person (commands, the bot); None: *text*
    #: an application-specific condition in courier-hops' namespace (RFC 6120 §8.4), or None
    extension: str | None = None

    @property
    def sentence(self) -> str:
        return self.text if self.said is None else self.said


def failure(exc: BaseException) -> Failure | None:
    """The one mapping: what *exc* is for the user; None: not an expected failure (a bug)."""
    if isinstance(exc, CommandError):
        return Failure("bad-request", str(exc), "modify")
    if isinstance(exc, StoreUnavailable):
        return Failure("internal-server-error", str(exc), "wait")
    if isinstance(exc, NotFound):
        return Failure("item-not-found", "no message of yours has that id", said="No message of yours has that id.")
    if isinstance(exc, PassedOn):  # courier-hops 0.4.0: the client must not send it again
        return Failure("not-allowed", f"{exc}: it can no longer be changed", said=f"Too late: {exc}.",
                       extension="passed-on")  # fmt: skip
    if isinstance(exc, TooLate):
        return Failure("not-allowed", f"{exc}: it can no longer be changed", said=f"Too late: {exc}.")
    if isinstance(exc, Encrypted):
        return Failure("not-acceptable", str(exc), said=_capital(str(exc)))
    if isinstance(exc, Invalid):
        return Failure("bad-request", str(exc), said=_capital(str(exc)))
    if isinstance(exc, DraftError):
        return _draft(exc)
    if isinstance(exc, SmsError):
        return Failure(exc.condition, exc.text, SMS_TYPES.get(exc.condition, "cancel"))  # type: ignore[arg-type]
    if isinstance(exc, ListError):
        return Failure(exc.condition, exc.text, exc.etype)
    return None


def _capital(text: str) -> str:
    """An error's text as a sentence: ``the new text is empty`` → ``The new text is empty.``"""
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _draft(exc: DraftError) -> Failure:
    """A draft failure as courier-drafts specifies it."""
    if isinstance(exc, DraftNotFound):
        return Failure("item-not-found", "no draft of yours has that id", said=str(exc))
    if isinstance(exc, DraftTooLate):
        return Failure("not-allowed", str(exc))
    if isinstance(exc, DraftLimit):
        if exc.kind == "pending":
            return Failure("resource-constraint", str(exc), "wait")
        return Failure("not-acceptable", str(exc), "modify")
    return Failure("bad-request", str(exc), "modify")


def xmpp_error(exc: BaseException) -> XMPPError:
    """*exc* as the XMPP error the user gets (``internal-server-error`` for a bug)."""
    f = failure(exc)
    if f is None:
        return XMPPError("internal-server-error", "Courier failed; it has been logged", etype="wait")
    return _error(f, f.text)


def _error(f: Failure, text: str) -> XMPPError:
    if f.extension is None:
        return XMPPError(f.condition, text, etype=f.etype)
    return XMPPError(f.condition, text, etype=f.etype, extension=f.extension, extension_ns=NS_HOPS)


@contextmanager
def as_xmpp_errors(not_found: str | None = None) -> Iterator[None]:
    """An expected failure inside leaves as its XMPP error (*not_found*: the text of a
    :class:`NotFound` here); anything else goes on (slixmpp logs it, answers
    ``internal-server-error``)."""
    try:
        yield
    except Exception as exc:
        f = failure(exc)
        if f is None:
            raise
        raise _error(f, not_found if not_found and isinstance(exc, NotFound) else f.text) from None


def sentence(exc: BaseException) -> str | None:
    """*exc* as the sentence a command answers; None: not an expected failure (a bug)."""
    f = failure(exc)
    return None if f is None else f.sentence


__all__ = ["SORRY", "Failure", "as_xmpp_errors", "failure", "sentence", "xmpp_error"]
