"""The conversation core: who has the chat, which moves are allowed, where its events go, and the hand-back to the
bot. Plain functions over plain values (no server, no database), so the rules are tested on their own
(tests/test_conversation.py) and every transport module asks here instead of deciding for itself.

A chat is with the bot until it escalates; then it waits in a team's queue, an agent accepts it, and it stays with
agents (transfers move it between agents, or back into a queue) until one resolves it and hands it back to the bot:

    bot --escalate--> queued --accept--> agent --resolve--> bot
                        ^                  |  \\--transfer to an agent--> agent
                        \\---transfer to a team---/
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Final

from common.errors import Conflict


class Phase(StrEnum):
    """``conversations.status``: who answers the customer's next message."""

    BOT = "bot"
    QUEUED = "queued"  # waiting for an agent; the bot stays silent (Rasa is paused)
    AGENT = "agent"


class Move(StrEnum):
    ESCALATE = "escalate"
    ACCEPT = "accept"
    TRANSFER_TO_AGENT = "transfer_to_agent"
    TRANSFER_TO_TEAM = "transfer_to_team"
    RESOLVE = "resolve"


TRANSITIONS: Final[dict[tuple[Phase, Move], Phase]] = {
    (Phase.BOT, Move.ESCALATE): Phase.QUEUED,
    (Phase.QUEUED, Move.ACCEPT): Phase.AGENT,
    (Phase.AGENT, Move.TRANSFER_TO_AGENT): Phase.AGENT,
    (Phase.AGENT, Move.TRANSFER_TO_TEAM): Phase.QUEUED,
    (Phase.AGENT, Move.RESOLVE): Phase.BOT,
}


class IllegalMove(Conflict):
    code = "illegal_move"
    message = "This chat has moved on meanwhile; reload to see where it stands."


def next_phase(current: Phase | str, move: Move) -> Phase:
    """The phase after ``move``; a move the current phase does not allow raises ``IllegalMove``."""
    try:
        return TRANSITIONS[(Phase(current), move)]
    except (KeyError, ValueError):
        raise IllegalMove() from None


def target(move: Move) -> Phase:
    """Where ``move`` leads (each move has one destination)."""
    (phase,) = {after for (_, m), after in TRANSITIONS.items() if m is move}
    return phase


def sources(move: Move) -> frozenset[Phase]:
    """The phases ``move`` may start from."""
    return frozenset(before for (before, m) in TRANSITIONS if m is move)


def allowed(current: Phase | str, move: Move) -> bool:
    try:
        next_phase(current, move)
    except IllegalMove:
        return False
    return True


class Route(StrEnum):
    """Where a customer's stored message goes next."""

    BOT = "bot"  # the bot answers it
    AGENT = "agent"  # the human phase: to the seated agent (or held for the one who accepts)
    DUPLICATE = "duplicate"  # a resend of a message already stored: acknowledged, never answered twice


def route_customer_message(phase: Phase | str, created: bool) -> Route:
    if not created:
        return Route.DUPLICATE
    return Route.BOT if Phase(phase) is Phase.BOT else Route.AGENT


# --- Rooms: the sender names the recipients (Zulip's rule), always through these names. -----------------------
# Socket.IO rooms are per namespace, so one chat has one room name on both sides: its customer's sockets join it
# on "/", the seated agent's sockets join it on "/agent".

AGENTS_ROOM: Final = "agents"  # every agent socket


def chat_room(conversation_id: str) -> str:
    """One conversation: its customer's sockets (namespace "/") or its seated agent's (namespace "/agent")."""
    return f"conversation:{conversation_id}"


def conversation_of_room(room: str | None) -> str | None:
    """The conversation id of a ``chat_room`` name; None for any other room."""
    prefix = "conversation:"
    return room[len(prefix) :] if room and room.startswith(prefix) else None


def agent_room(agent_id: int) -> str:
    """Every socket of one agent (several tabs, several relay processes)."""
    return f"agent:{agent_id}"


def team_room(team: str) -> str:
    """Agents working one team's queue."""
    return f"team:{team}"


# --- Hand-back to the bot ---------------------------------------------------------------------------------------
# The escalation paused the conversation in Rasa. Resolving hands it back exactly once: Rasa is told to resume and
# given an ``action_listen`` (the pause cut its prediction loop short of one; without it no rule matches the next
# message and Rasa loops on its fallback). Nothing said in the human phase is replayed: a paused Rasa predicted no
# action for it, and resuming does not re-run old turns. If Rasa is down at resolve time the conversation stays
# marked paused, and the next bot turn resumes it first.

RESUME_EVENTS: Final[list[dict[str, Any]]] = [{"event": "resume"}, {"event": "action", "name": "action_listen"}]


def must_resume_before_answering(phase: Phase | str, bot_paused: bool) -> bool:
    """A message for the bot in a conversation Rasa still holds paused (resuming at resolve failed)."""
    return Phase(phase) is Phase.BOT and bot_paused
