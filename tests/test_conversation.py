"""The conversation core (handoff/conversation.py): phases, allowed moves, routing of a message, rooms, hand-back."""

from __future__ import annotations

import pytest

from handoff.conversation import (
    RESUME_EVENTS,
    TRANSITIONS,
    IllegalMove,
    Move,
    Phase,
    Route,
    agent_room,
    allowed,
    chat_room,
    conversation_of_room,
    must_resume_before_answering,
    next_phase,
    route_customer_message,
    sources,
    target,
    team_room,
)


def test_the_life_of_a_chat() -> None:
    phase = Phase.BOT
    for move, expected in (
        (Move.ESCALATE, Phase.QUEUED),
        (Move.ACCEPT, Phase.AGENT),
        (Move.TRANSFER_TO_AGENT, Phase.AGENT),
        (Move.TRANSFER_TO_TEAM, Phase.QUEUED),
        (Move.ACCEPT, Phase.AGENT),
        (Move.RESOLVE, Phase.BOT),
    ):
        phase = next_phase(phase, move)
        assert phase is expected


@pytest.mark.parametrize("phase", list(Phase))
@pytest.mark.parametrize("move", list(Move))
def test_every_move_not_in_the_table_is_refused(phase: Phase, move: Move) -> None:
    if (phase, move) in TRANSITIONS:
        assert allowed(phase, move)
    else:
        assert not allowed(phase, move)
        with pytest.raises(IllegalMove):
            next_phase(phase, move)


def test_a_stored_status_string_works_and_an_unknown_one_is_refused() -> None:
    assert next_phase("queued", Move.ACCEPT) is Phase.AGENT
    with pytest.raises(IllegalMove):
        next_phase("resolved", Move.ACCEPT)


def test_who_answers_a_customer_message() -> None:
    assert route_customer_message("bot", created=True) is Route.BOT
    assert route_customer_message("queued", created=True) is Route.AGENT
    assert route_customer_message("agent", created=True) is Route.AGENT
    for phase in Phase:  # a resend is never answered twice, whoever has the chat
        assert route_customer_message(phase, created=False) is Route.DUPLICATE


def test_one_chat_has_one_room_name() -> None:
    assert chat_room("abc123xyz") == "conversation:abc123xyz"
    assert conversation_of_room(chat_room("abc123xyz")) == "abc123xyz"
    assert conversation_of_room("team:support") is None and conversation_of_room(None) is None
    assert len({chat_room("x1"), agent_room(1), team_room("x1")}) == 3


def test_the_hand_back() -> None:
    assert RESUME_EVENTS == [{"event": "resume"}, {"event": "action", "name": "action_listen"}]
    assert must_resume_before_answering("bot", bot_paused=True)
    assert not must_resume_before_answering("bot", bot_paused=False)
    assert not must_resume_before_answering("agent", bot_paused=True)  # still paused on purpose


def test_each_move_has_one_destination_and_known_sources() -> None:
    assert target(Move.RESOLVE) is Phase.BOT and sources(Move.RESOLVE) == {Phase.AGENT}
    assert sources(Move.ACCEPT) == {Phase.QUEUED} and target(Move.TRANSFER_TO_TEAM) is Phase.QUEUED
