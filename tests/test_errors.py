"""The one error boundary (component/errors.py): what a service's failure becomes for the
user, over XMPP and as a command's answer; a bug is never dressed up as the user's mistake."""

from __future__ import annotations

import logging

import pytest
from slixmpp.exceptions import XMPPError

from component.commands import Command, CommandError, Context, Result
from component.commands.bot import Bot
from component.delivery.ports import Encrypted, Invalid, NotFound, TooLate
from component.delivery.states import Event, IllegalTransition, State
from component.errors import SORRY, as_xmpp_errors, sentence
from component.lists.model import ListError
from component.sms.model import SmsError
from component.store.errors import StoreUnavailable
from component.when import DraftInvalid, DraftLimit, DraftNotFound, DraftTooLate
from component.xep import e2ee


def raised(exc: Exception, **kwargs: str) -> tuple[str, str, str]:
    """(condition, type, text) of the XMPP error *exc* leaves ``as_xmpp_errors`` as."""
    with pytest.raises(XMPPError) as info:
        with as_xmpp_errors(**kwargs):
            raise exc
    return info.value.condition, info.value.etype, info.value.text


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (NotFound("m1"), ("item-not-found", "cancel", "no message of yours has that id")),
        (TooLate("the message is being sent as SMS"),
         ("not-allowed", "cancel", "the message is being sent as SMS: it can no longer be changed")),
        (Encrypted(), ("not-acceptable", "cancel", e2ee.EDIT_REFUSED)),
        (Invalid("the new text is empty"), ("bad-request", "cancel", "the new text is empty")),
        (StoreUnavailable("the store cannot commit"), ("internal-server-error", "wait", "the store cannot commit")),
        (DraftNotFound("You have no draft 3."), ("item-not-found", "cancel", "no draft of yours has that id")),
        (DraftTooLate("Draft 3 was already sent."), ("not-allowed", "cancel", "Draft 3 was already sent.")),
        (DraftLimit("Too many.", "pending"), ("resource-constraint", "wait", "Too many.")),
        (DraftLimit("Too long.", "length"), ("not-acceptable", "modify", "Too long.")),
        (DraftInvalid("Bad JID."), ("bad-request", "modify", "Bad JID.")),
        (SmsError("conflict", "Another account's."), ("conflict", "cancel", "Another account's.")),
        (SmsError("resource-constraint", "Too many codes."), ("resource-constraint", "wait", "Too many codes.")),
        (ListError("item-not-found", "No such list.", "modify"), ("item-not-found", "modify", "No such list.")),
    ],
)  # fmt: skip
def test_every_services_failure_leaves_as_its_xmpp_error(exc: Exception, expected: tuple[str, str, str]) -> None:
    assert raised(exc) == expected


def test_a_not_found_can_say_what_was_not_found() -> None:
    assert raised(NotFound("m1"), not_found="you received no message with that id")[2] == (
        "you received no message with that id"
    )


@pytest.mark.parametrize(
    "bug", [RuntimeError("oops"), KeyError("seq"), ValueError("a bug"), IllegalTransition(State.RELEASED, Event.RECALL)]
)
def test_a_bug_is_not_an_xmpp_error_of_the_user(bug: Exception) -> None:
    with pytest.raises(type(bug)):
        with as_xmpp_errors():
            raise bug
    assert sentence(bug) is None


def test_commands_answer_the_same_failures_in_sentences() -> None:
    assert sentence(CommandError("Usage: recall N")) == "Usage: recall N"
    assert sentence(Encrypted()) == "This message is end-to-end encrypted; correct it from your client."
    assert sentence(DraftNotFound("You have no draft 3.")) == "You have no draft 3."
    assert sentence(SmsError("bad-request", "Not a phone number.")) == "Not a phone number."
    assert sentence(StoreUnavailable("Courier cannot store anything right now.")) == (
        "Courier cannot store anything right now."
    )


class Failing(Command):
    node, name, help, example, words = "fail", "Fail", "fails", "fail", ("fail",)  # noqa: RUF012

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    async def run(self, ctx: Context, values: dict[str, object]) -> Result:
        raise self.exc


async def test_the_bot_answers_a_failure_in_a_sentence_and_a_bug_with_sorry(caplog: pytest.LogCaptureFixture) -> None:
    ctx = Context(requester="juliet@capulet.lit", pipeline=None)  # type: ignore[arg-type]
    told = await Bot([Failing(ListError("item-not-found", "You have no list “friends”."))]).answer(ctx, "fail")
    assert told == "You have no list “friends”."
    with caplog.at_level(logging.ERROR):
        sorry = await Bot([Failing(RuntimeError("disk on fire"))]).answer(ctx, "fail")
    assert sorry == SORRY
    assert "bot command 'fail' from juliet@capulet.lit failed" in caplog.text and "disk on fire" in caplog.text
