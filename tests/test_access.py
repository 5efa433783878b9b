"""Who may do what (handoff/access.py, docs/access.md): every cell of the table that says no, as the rules alone
and through the handlers (recording fakes, real SQLite), plus the admin's recorded capacity override."""

from __future__ import annotations

import pytest
import socketio
from sqlalchemy import select, update

from handoff import access, events, teams
from handoff.auth import create_agent, login
from handoff.models import Agent, Message, Ticket
from tests.handler_harness import SESSION, Relay, escalate

A = events.AGENT_NAMESPACE


def test_the_rules_alone() -> None:
    assert access.may_use_console("agent") and access.may_use_console("admin") and not access.may_use_console("editor")
    access.check_queue("agent", {"support"}, "support")
    access.check_queue("admin", set(), "billing")
    with pytest.raises(access.NotYourQueue):
        access.check_queue("agent", {"support"}, "billing")
    assert access.check_room("agent", 1, 2) is access.Room.FREE
    assert access.check_room("admin", 2, 2) is access.Room.OVERRIDE
    with pytest.raises(access.AtCapacity):
        access.check_room("agent", 2, 2)
    access.check_record("agent", 1, 1, "assigned", set(), "support")  # seated
    access.check_record("agent", 1, None, "queued", {"support"}, "support")  # waits in my queue
    access.check_record("admin", 9, 1, "assigned", set(), "support")
    for seated, status, working in (
        (2, "assigned", {"support"}),
        (None, "queued", {"billing"}),
        (1, "resolved", {"support"}),
    ):
        with pytest.raises(access.NotYourCustomer):
            access.check_record("agent", 1, seated, status, working, "support")


async def account(relay: Relay, sid: str, username: str, role: str = "agent", capacity: int | None = None) -> int:
    async with relay.sessions() as s, s.begin():
        agent = await create_agent(s, username, username.title(), "correct horse battery", role)
        if capacity is not None:
            agent.capacity = capacity
    await relay.sio.save_session(sid, {"agent_id": agent.id, "name": agent.name, "role": role}, namespace=A)
    return agent.id


async def test_an_editor_may_not_use_the_agent_console(relay: Relay) -> None:
    async with relay.sessions() as s, s.begin():
        await create_agent(s, "eddie", "Eddie", "correct horse battery", "editor")
        _, token = await login(s, "eddie", "correct horse battery")
    connect = relay.sio.handlers[(A, "connect")]
    with pytest.raises(socketio.exceptions.ConnectionRefusedError) as refused:
        await connect("e1", {}, {"token": token})
    assert refused.value.error_args["data"]["code"] == "console_forbidden"


async def test_an_agent_may_not_take_another_teams_ticket_but_an_admin_may(relay: Relay) -> None:
    ticket_id = await escalate(relay)
    async with relay.sessions() as s, s.begin():
        await teams.save_team(s, "billing", "Billing", None, False)
        await s.execute(update(Ticket).where(Ticket.id == ticket_id).values(team="billing"))
    await account(relay, "a1", "ada")
    ack = await relay.sio.call(A, "accept", "a1", {"ticket_id": ticket_id})
    assert ack["error"]["code"] == "not_your_queue"
    sync = await relay.sio.call(A, "sync", "a1", {})
    assert sync["queue"] == []  # not even seen
    await account(relay, "r1", "root", role="admin")
    assert [q["ticket_id"] for q in (await relay.sio.call(A, "sync", "r1", {}))["queue"]] == [ticket_id]
    assert (await relay.sio.call(A, "accept", "r1", {"ticket_id": ticket_id}))["ok"]


async def test_capacity_holds_on_accept_and_an_admins_override_is_recorded(relay: Relay) -> None:
    ticket_id = await escalate(relay)
    await account(relay, "a1", "ada", capacity=0)
    assert (await relay.sio.call(A, "accept", "a1", {"ticket_id": ticket_id}))["error"]["code"] == "at_capacity"
    await account(relay, "r1", "root", role="admin", capacity=0)
    assert (await relay.sio.call(A, "accept", "r1", {"ticket_id": ticket_id}))["ok"]
    async with relay.sessions() as s:
        notes = (await s.execute(select(Message.text).where(Message.sender == "note"))).scalars().all()
    assert any("over their capacity" in n for n in notes)


async def test_capacity_holds_on_a_transfer_to_an_agent(relay: Relay) -> None:
    ticket_id = await escalate(relay)
    await account(relay, "a1", "ada")
    full = await account(relay, "b1", "bea", capacity=0)
    await relay.sio.call(A, "accept", "a1", {"ticket_id": ticket_id})
    ack = await relay.sio.call(
        A, "transfer", "a1", {"ticket_id": ticket_id, "to_agent_id": full, "note": "over to you"}
    )
    assert ack["error"]["code"] == "at_capacity"
    async with relay.sessions() as s:
        ticket = await s.get(Ticket, ticket_id)
        assert ticket is not None and ticket.agent_id != full  # nothing moved


async def test_a_customer_record_only_for_my_chat_or_my_queue(relay: Relay) -> None:
    ticket_id = await escalate(relay)
    await account(relay, "a1", "ada")
    await account(relay, "b1", "bea")
    assert (await relay.sio.call(A, "customer_record", "b1", {"ticket_id": ticket_id}))["ok"]  # waits in her queue
    await relay.sio.call(A, "accept", "a1", {"ticket_id": ticket_id})
    ack = await relay.sio.call(A, "customer_record", "b1", {"ticket_id": ticket_id})
    assert ack["error"]["code"] == "not_your_customer"  # seated with someone else now
    assert (await relay.sio.call(A, "customer_record", "a1", {"ticket_id": ticket_id}))["ok"]
    missing = await relay.sio.call(A, "customer_record", "b1", {"ticket_id": 987654})
    assert missing["error"]["code"] == "not_your_customer"  # the same answer: no probing for ticket ids


async def test_only_the_seated_agent_may_write_type_read_or_resolve(relay: Relay) -> None:
    ticket_id = await escalate(relay)
    await account(relay, "a1", "ada")
    await account(relay, "b1", "bea")
    await relay.sio.call(A, "accept", "a1", {"ticket_id": ticket_id})
    async with relay.sessions() as s:
        first = (await s.execute(select(Message.id).where(Message.conversation_id == SESSION))).scalars().first()
    for event, data in (
        ("agent_message", {"ticket_id": ticket_id, "text": "hi"}),
        ("typing", {"ticket_id": ticket_id, "typing": True}),
        ("read", {"ticket_id": ticket_id, "message_id": first}),
        ("resolve", {"ticket_id": ticket_id}),
        ("transfer", {"ticket_id": ticket_id, "to_team": "support", "note": "mine now"}),
    ):
        assert (await relay.sio.call(A, event, "b1", data))["error"]["code"] == "not_your_ticket", event
    async with relay.sessions() as s:
        assert (await s.get(Ticket, ticket_id)).status == "assigned"  # type: ignore[union-attr]
        assert (await s.execute(select(Agent.id))).all()
