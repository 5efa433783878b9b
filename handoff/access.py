"""Who may do what in the console: plain functions over roles, teams and loads, so every rule is tested on its own
(tests/test_access.py) and the handlers only ask. The table of every rule is docs/access.md.

Roles: ``agent`` works the queues of their teams; ``admin`` works every queue and may override capacity (the
override is recorded in the chat as a note); ``editor`` curates the KB at /editor and may not use the agent
console at all (its socket is refused at connect).
"""

from __future__ import annotations

from enum import StrEnum

from common.errors import Forbidden

CONSOLE_ROLES = frozenset({"agent", "admin"})


class NotYourQueue(Forbidden):
    code = "not_your_queue"
    message = "This chat waits in another team's queue."


class AtCapacity(Forbidden):
    code = "at_capacity"
    message = "That would be more chats at once than the agent's capacity allows."


class ConsoleForbidden(Forbidden):
    code = "console_forbidden"
    message = "The agent console is for agents and admins; editors work in the KB editor at /editor."


class NotYourCustomer(Forbidden):
    code = "not_your_customer"
    message = "You can read a customer's record only for a chat you are in or one waiting in your queues."


class Room(StrEnum):
    FREE = "free"
    OVERRIDE = "override"  # full, but an admin may take it on (and it is recorded)


def may_use_console(role: str) -> bool:
    return role in CONSOLE_ROLES


def check_queue(role: str, working: set[str], ticket_team: str) -> None:
    """Seeing, being offered and accepting a queued ticket: one of my teams' queues, or any for an admin."""
    if role != "admin" and ticket_team not in working:
        raise NotYourQueue()


def check_room(actor_role: str, active: int, capacity: int) -> Room:
    """One more chat for an agent who has ``active`` of ``capacity``: allowed, an admin's override, or refused."""
    if active < capacity:
        return Room.FREE
    if actor_role == "admin":
        return Room.OVERRIDE
    raise AtCapacity()


def check_record(
    role: str, me: int, seated_agent: int | None, ticket_status: str, working: set[str], team: str
) -> None:
    """A customer's record (past chats, tickets, ratings): for the agent seated in this chat, for agents of the
    team whose queue it waits in, and for admins."""
    if role == "admin":
        return
    if ticket_status == "assigned" and seated_agent == me:
        return
    if ticket_status == "queued" and team in working:
        return
    raise NotYourCustomer()
