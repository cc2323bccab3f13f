"""The transition table, exhaustively: every (state, event) pair is tested."""

import itertools

import pytest

from component.delivery.states import (
    DELIVERED,
    OPEN,
    SMS_SENT,
    TERMINAL,
    TRANSITIONS,
    Event,
    IllegalTransition,
    State,
    accept,
    apply,
    next_state,
)

ALL_PAIRS = list(itertools.product(State, Event))


@pytest.mark.parametrize(("state", "event"), ALL_PAIRS, ids=lambda v: str(v))
def test_every_pair_is_either_legal_or_raises(state: State, event: Event) -> None:
    if (state, event) in TRANSITIONS:
        assert next_state(state, event) is TRANSITIONS[(state, event)]
    else:
        with pytest.raises(IllegalTransition, match=f"a {state} message cannot be {event}"):
            next_state(state, event)


@pytest.mark.parametrize("state", sorted(TERMINAL))
def test_terminal_states_accept_nothing(state: State) -> None:
    assert not [e for e in Event if (state, e) in TRANSITIONS]


def test_recall_and_edit_only_before_delivery() -> None:
    recallable = {s for s in State if (s, Event.RECALL) in TRANSITIONS}
    assert recallable == OPEN
    retractable = {s for s in State if (s, Event.RETRACT) in TRANSITIONS}
    assert retractable == DELIVERED
    # an edit never changes the state: before delivery it rewrites the stored body,
    # after it the correction is passed on
    for s in State:
        if (s, Event.EDIT) in TRANSITIONS:
            assert TRANSITIONS[(s, Event.EDIT)] is s


def test_the_happy_path_of_design_md() -> None:
    state = accept(1.0, "shakespeare.lit").state
    path = []
    for event in (Event.HOLD, Event.EDIT, Event.RELEASE, Event.RECEIVE, Event.READ):
        hop = apply(state, event, 2.0, "shakespeare.lit")
        path.append(hop.label)
        state = hop.state
    assert path == ["held", "edited", "released", "received", "read"]
    assert state is State.READ


def test_read_never_goes_back_to_received() -> None:
    with pytest.raises(IllegalTransition):
        next_state(State.READ, Event.RECEIVE)


def test_hop_records_time_place_and_note() -> None:
    hop = apply(State.HELD, Event.RECALL, 12.5, "shakespeare.lit", "by juliet@shakespeare.lit/balcony")
    assert (hop.label, hop.state, hop.at, hop.place, hop.note) == (
        "recalled",
        State.RECALLED,
        12.5,
        "shakespeare.lit",
        "by juliet@shakespeare.lit/balcony",
    )


def test_the_sms_fallback_path_of_design_md() -> None:
    state = accept(1.0, "shakespeare.lit").state
    path = []
    for event in (Event.HOLD, Event.EDIT, Event.SMS, Event.SMS_DELIVER):
        hop = apply(state, event, 2.0, "shakespeare.lit")
        path.append(hop.label)
        state = hop.state
    assert path == ["held", "edited", "sms", "sms-delivered"]
    assert state is State.SMS_DELIVERED


def test_a_message_to_a_phone_number_goes_as_sms_at_once() -> None:
    assert next_state(State.ACCEPTED, Event.SMS) is State.SMS
    assert next_state(State.SMS, Event.FAIL) is State.FAILED  # the gateway's report: undeliverable


def test_never_both_sms_and_xmpp() -> None:
    """Once submitted as SMS a message is never released, recalled, edited or retracted."""
    for s in SMS_SENT:
        allowed = {e for e in Event if (s, e) in TRANSITIONS}
        assert allowed <= {Event.SMS_DELIVER, Event.FAIL}
    # ...and a message that went over XMPP never goes as SMS
    assert not [s for s in DELIVERED if (s, Event.SMS) in TRANSITIONS]
    assert {s for s in State if (s, Event.SMS) in TRANSITIONS} == OPEN
    assert {s for s in State if (s, Event.SMS_DELIVER) in TRANSITIONS} == {State.SMS}


def test_hop_words_differ_from_states_only_for_sent_and_cached() -> None:
    from component.delivery.states import hop_word

    assert hop_word("accepted") == "sent"
    assert hop_word("held", "recipient-offline") == "cached"
    assert hop_word("held", "undo-window") == "held"
    assert [hop_word(s.value) for s in State if s not in (State.ACCEPTED,)] == [
        s.value for s in State if s is not State.ACCEPTED
    ]
