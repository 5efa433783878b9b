"""The relay's socket handlers, driven through recording fakes of the Socket.IO server and the bot (tests/fakes.py)
over a real SQLite file: every branch of the customer's message (bot turn, resend, escalation, human phase, a
paused or a dead bot), the agent's accept, message and resolve, and a transfer. Every emit is checked against the
event catalogue as it happens, and every ``bot_uttered`` against the shapes Rasa emits. No server runs."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from handoff import events, queues, tickets
from handoff.conversation import chat_room, team_room
from handoff.customer import BOT_DOWN_TEXT, HUMAN_PAYLOAD
from handoff.models import Conversation, Message, Ticket
from tests.fakes import check_shape
from tests.handler_harness import SESSION, Relay, escalate, seat_agent

C, A = events.CUSTOMER_NAMESPACE, events.AGENT_NAMESPACE


async def test_session_request_confirms_with_the_bare_id_and_sends_history(relay: Relay) -> None:
    (confirm,) = relay.sio.sent("session_confirm")
    assert confirm.data == SESSION and confirm.to == "c1"
    (history,) = relay.sio.sent("history")
    assert history.data["session_id"] == SESSION and history.data["status"] == "bot"
    assert "c1" in relay.sio.rooms[(C, chat_room(SESSION))]


async def test_a_bot_turn_is_stored_then_sent_in_rasa_shape(relay: Relay) -> None:
    relay.bot.replies.append(
        [{"text": "Hold the reset button.", "buttons": [{"title": "Thanks", "payload": "/thanks"}]}]
    )
    ack = await relay.say("how do I reset my router", client_id="m1")
    assert ack["ok"] and ack["client_id"] == "m1" and not ack["duplicate"]
    (reply,) = relay.sio.sent("bot_uttered")
    assert reply.to == chat_room(SESSION)
    assert set(reply.data) == {"text", "quick_replies", "metadata"}
    assert reply.data["metadata"]["sender"] == "bot"
    assert await relay.messages() == [("customer", "how do I reset my router"), ("bot", "Hold the reset button.")]
    async with relay.sessions() as s:
        parse = (await s.execute(select(Message.parse).where(Message.sender == "customer"))).scalar_one()
    assert parse == {"intent": {"name": "scripted", "confidence": 1.0}}


async def test_a_resend_is_acknowledged_once_and_never_answered_twice(relay: Relay) -> None:
    first = await relay.say("hello", client_id="m1")
    relay.sio.clear()
    again = await relay.say("hello", client_id="m1")
    assert again["duplicate"] and again["message_id"] == first["message_id"]
    assert relay.sio.sent("bot_uttered") == []
    assert await relay.messages() == [("customer", "hello"), ("bot", "echo: hello")]


async def test_an_escalating_turn_opens_one_ticket_and_tells_the_customer_and_the_team(relay: Relay) -> None:
    ticket_id = await escalate(relay)
    texts = [e.data.get("text") for e in relay.sio.sent("bot_uttered")]
    assert texts[0] == "Let me find a person." and "No one from our team is online" in texts[1]  # nobody online
    assert all("handoff" not in e.data for e in relay.sio.sent("bot_uttered"))  # the card is for agents only
    position = relay.sio.sent("queue_position")[0]  # then the queue refresh may send it again
    assert position.data["ticket_id"] == ticket_id and position.to == chat_room(SESSION)
    (waiting,) = relay.sio.sent("ticket_waiting", A)
    assert waiting.to == team_room("support") and waiting.data["customer"]["name"] == "Ana"
    async with relay.sessions() as s:
        chat = await s.get(Conversation, SESSION)
        assert chat is not None and chat.status == "queued" and chat.bot_paused


async def test_the_human_phase_goes_to_the_agent_not_the_bot(relay: Relay) -> None:
    ticket_id = await escalate(relay)
    await seat_agent(relay)
    assert (await relay.sio.call(A, "accept", "a1", {"ticket_id": ticket_id}))["ok"]
    relay.sio.clear()
    ack = await relay.say("my router is the blue one", client_id="m2")
    assert ack["ok"]
    assert relay.sio.sent("bot_uttered") == []  # the bot read it (Rasa is paused) but says nothing
    (chat,) = relay.sio.sent("chat_message", A)
    assert chat.data["message"]["text"] == "my router is the blue one" and chat.to == chat_room(SESSION)


async def test_agent_messages_reach_a_rasa_widget_as_replies_and_resolve_hands_back(relay: Relay) -> None:
    ticket_id = await escalate(relay)
    await seat_agent(relay)
    await relay.sio.call(A, "accept", "a1", {"ticket_id": ticket_id})
    joined = relay.sio.sent("bot_uttered")[-1]
    assert joined.data["text"] == "Ada joined the chat." and joined.data["metadata"]["agent_name"] == "Ada"
    relay.sio.clear()
    ack = await relay.sio.call(
        A, "agent_message", "a1", {"ticket_id": ticket_id, "text": "Hi, Ada here", "client_id": "x1"}
    )
    assert ack["ok"] and not ack["duplicate"], ack
    (said,) = relay.sio.sent("bot_uttered")
    assert set(said.data) == {"text", "metadata"} and said.data["metadata"]["sender"] == "agent"
    assert said.data["metadata"]["agent_name"] == "Ada"
    # The sender's console shows its message from the ack; the chat's room gets it too, less the sending socket.
    assert ack["ticket_id"] == ticket_id and ack["message"]["message_id"] == ack["message_id"]
    assert ack["message"]["text"] == "Hi, Ada here" and ack["message"]["sender"] == "agent"
    (relayed,) = relay.sio.sent("chat_message", A)
    assert relayed.data["message"] == ack["message"] and relayed.to == chat_room(SESSION) and relayed.skip == "a1"
    relay.sio.clear()
    again = await relay.sio.call(
        A, "agent_message", "a1", {"ticket_id": ticket_id, "text": "Hi, Ada here", "client_id": "x1"}
    )
    assert again["duplicate"] and again["message"] == ack["message"]  # a resend: the same message, sent to nobody
    assert relay.sio.emitted == []
    relay.sio.clear()
    assert (await relay.sio.call(A, "resolve", "a1", {"ticket_id": ticket_id}))["ok"]
    assert relay.bot.resumed == [SESSION]
    (rating,) = relay.sio.sent("rating_request")
    assert rating.data["ticket_id"] == ticket_id
    async with relay.sessions() as s:
        chat = await s.get(Conversation, SESSION)
        assert chat is not None and chat.status == "bot" and not chat.bot_paused


async def test_a_conversation_rasa_still_holds_paused_is_resumed_before_the_bot_answers(relay: Relay) -> None:
    async with relay.sessions() as s, s.begin():
        await s.execute(update(Conversation).where(Conversation.id == SESSION).values(bot_paused=True))
    await relay.say("are you back?")
    assert relay.bot.resumed == [SESSION]
    assert relay.bot.sent == [(SESSION, "are you back?"), (SESSION, "are you back?")]  # read again once resumed
    assert [e.data["text"] for e in relay.sio.sent("bot_uttered")] == ["echo: are you back?"]


async def test_a_dead_bot_is_said_at_once_with_a_person_on_offer_and_the_offer_opens_a_ticket(relay: Relay) -> None:
    relay.bot.down = True
    ack = await relay.say("is my bill ready?")
    assert ack["ok"] and ack["error"]["code"] == "bot_unavailable"  # stored all the same
    (error,) = relay.sio.sent("relay_error")
    assert error.data["code"] == "bot_unavailable" and error.to == "c1"
    (offer,) = relay.sio.sent("bot_uttered")
    assert offer.data["text"] == BOT_DOWN_TEXT and offer.data["quick_replies"][0]["payload"] == HUMAN_PAYLOAD
    relay.sio.clear()
    await relay.say(HUMAN_PAYLOAD)
    async with relay.sessions() as s:
        ticket = await tickets.open_ticket_of(s, SESSION)
    assert ticket is not None and ticket.reason == "bot_unavailable"
    assert relay.sio.sent("ticket_waiting", A) and relay.sio.sent("queue_position")
    assert ("customer", "is my bill ready?") in await relay.messages()  # the agent will read it in the transcript


async def test_bad_events_get_a_clear_error_and_store_nothing(relay: Relay) -> None:
    for data, code in (
        ("just a string", "invalid_payload"),
        ({"message": ""}, "invalid_payload"),
        ({"message": "x" * 4001}, "message_too_long"),
        ({"message": "hi", "session_id": "someone-elses-chat"}, "wrong_session"),
    ):
        ack = await relay.sio.call(C, "user_uttered", "c1", data)
        assert ack == {
            "ok": False,
            "error": {"code": code, "message": ack["error"]["message"], "event": "user_uttered"},
        }
    assert (await relay.sio.call(C, "user_uttered", "stranger", {"message": "hi"}))["error"]["code"] == "no_session"
    assert [e.data["code"] for e in relay.sio.sent("relay_error")] == [
        "invalid_payload", "invalid_payload", "message_too_long", "wrong_session", "no_session",
    ]  # fmt: skip
    assert await relay.messages() == []


async def test_only_the_seated_agent_may_speak_in_a_chat(relay: Relay) -> None:
    ticket_id = await escalate(relay)
    await seat_agent(relay)
    await seat_agent(relay, "b1", "bea")
    await relay.sio.call(A, "accept", "a1", {"ticket_id": ticket_id})
    ack = await relay.sio.call(A, "agent_message", "b1", {"ticket_id": ticket_id, "text": "not mine"})
    assert ack["error"]["code"] == "not_your_ticket"
    assert (await relay.sio.call(A, "accept", "b1", {"ticket_id": ticket_id}))["error"]["code"] == "ticket_unavailable"


async def test_a_transfer_to_another_agent_moves_the_seat_with_a_note_only_agents_see(relay: Relay) -> None:
    ticket_id = await escalate(relay)
    await seat_agent(relay)
    bea = await seat_agent(relay, "b1", "bea")
    await relay.sio.call(A, "accept", "a1", {"ticket_id": ticket_id})
    relay.sio.clear()
    ack = await relay.sio.call(
        A, "transfer", "a1", {"ticket_id": ticket_id, "to_agent_id": bea, "note": "VIP, billing"}
    )
    assert ack["ok"]
    told = [e.data["text"] for e in relay.sio.sent("bot_uttered")]
    assert told == ["Ada transferred you to Bea.", "Bea joined the chat."]
    assert all("VIP" not in t for t in told)
    assert relay.sio.sent("chat_assigned", A)[0].data["to_agent_id"] == bea
    async with relay.sessions() as s:
        ticket = await s.get(Ticket, ticket_id)
        assert ticket is not None and ticket.agent_id == bea


async def test_queue_events_say_which_messages_they_were_read_after(relay: Relay) -> None:
    # A status read just before the accept (a queue refresh in flight) can reach the customer after "joined": its
    # as_of_message_id is below the joined message's id, so the widget drops it. After a transfer back to a queue,
    # the refresh reads past the "transferred" message, so its status shows again.
    ticket_id = await escalate(relay)
    await relay.dispatcher.settled()
    async with relay.sessions() as s:
        ticket = await s.get(Ticket, ticket_id)
        assert ticket is not None
        stale = await queues.status_of(s, ticket)
    assert stale.as_of_message_id == max(m.data["metadata"]["message_id"] for m in relay.sio.sent("bot_uttered"))
    # The escalation's own status is read before its "you're in the queue" message is stored, the refresh's after.
    assert [p.data["as_of_message_id"] for p in relay.sio.sent("queue_position")][-1] == stale.as_of_message_id
    assert all(0 < p.data["as_of_message_id"] <= stale.as_of_message_id for p in relay.sio.sent("queue_position"))
    await seat_agent(relay)
    await seat_agent(relay, "b1", "bea")
    # The consoles' side of the same race: the queue as a console reads it (sync) before the take is older than it.
    (queued,) = (await relay.sio.call(A, "sync", "b1", {}))["queue"]
    assert queued["ticket_id"] == ticket_id and queued["as_of_message_id"] == stale.as_of_message_id
    await relay.sio.call(A, "accept", "a1", {"ticket_id": ticket_id})
    (joined,) = [e for e in relay.sio.sent("bot_uttered") if e.data.get("text") == "Ada joined the chat."]
    assert joined.data["metadata"]["agent_name"] == "Ada"
    assert stale.as_of_message_id < joined.data["metadata"]["message_id"]
    (taken,) = relay.sio.sent("ticket_taken", A)
    assert taken.data == {"ticket_id": ticket_id, "as_of_message_id": joined.data["metadata"]["message_id"]}
    relay.sio.clear()
    ack = await relay.sio.call(A, "transfer", "a1", {"ticket_id": ticket_id, "to_team": "support", "note": "n"})
    assert ack["ok"]
    await relay.dispatcher.settled()
    (told,) = relay.sio.sent("bot_uttered")
    assert told.data["text"].startswith("Ada transferred you to our")
    fresh = relay.sio.sent("queue_position")[-1]
    assert fresh.data["ticket_id"] == ticket_id
    assert fresh.data["as_of_message_id"] >= told.data["metadata"]["message_id"] > joined.data["metadata"]["message_id"]
    # Back in the queue: the team's consoles get it again, read after the take, so they show it.
    (waiting,) = relay.sio.sent("ticket_waiting", A)
    assert waiting.data["as_of_message_id"] >= told.data["metadata"]["message_id"]
    for offered in relay.sio.sent("ticket_offered", A):
        assert offered.data["as_of_message_id"] >= told.data["metadata"]["message_id"]


def test_a_custom_payload_goes_out_as_is() -> None:
    check_shape(
        C,
        "bot_uttered",
        {"carousel": [1, 2], "metadata": {"message_id": 1, "sender": "bot", "ts": "t"}},
        custom_ok=True,
    )
    with pytest.raises(AssertionError):
        check_shape(
            C, "bot_uttered", {"text": "hi", "message_id": 1, "metadata": {"message_id": 1, "sender": "bot", "ts": "t"}}
        )


async def test_a_widgets_init_payload_asks_the_bot_for_its_greeting(relay: Relay) -> None:
    await relay.say("/get_started")
    assert relay.bot.sent == [(SESSION, "/greet")]
    assert ("customer", "/get_started") in await relay.messages()  # stored as the widget sent it


async def test_in_the_human_phase_rasa_is_not_asked_to_read_every_message(relay: Relay) -> None:
    ticket_id = await escalate(relay)
    await seat_agent(relay)
    await relay.sio.call(A, "accept", "a1", {"ticket_id": ticket_id})
    asked = len(relay.bot.sent)
    for text in ("first for the agent", "second", "third"):
        assert (await relay.say(text))["ok"]
    assert len(relay.bot.sent) == asked  # not even the first: the turn that handed the chat over told this socket
    assert [e.data["message"]["text"] for e in relay.sio.sent("chat_message", A)][-3:] == [
        "first for the agent",
        "second",
        "third",
    ]
    await relay.sio.call(A, "resolve", "a1", {"ticket_id": ticket_id})
    relay.sio.clear()
    await relay.say("back to the bot")  # the hint was "agent": stored first, then the bot is asked
    assert relay.bot.sent[-1] == (SESSION, "back to the bot")
    assert [e.data["text"] for e in relay.sio.sent("bot_uttered")] == ["echo: back to the bot"]


async def test_the_chat_moves_the_prometheus_counters(relay: Relay) -> None:
    from prometheus_client import REGISTRY

    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    turns, customers = (
        value("warmline_bot_turns_total", outcome="ok"),
        value("warmline_messages_total", sender="customer"),
    )
    await relay.say("hello")
    assert value("warmline_bot_turns_total", outcome="ok") == turns + 1
    assert value("warmline_messages_total", sender="customer") == customers + 1
    queued = value("warmline_queue_events_total", event="queued", team="support")
    ticket_id = await escalate(relay)
    assert value("warmline_queue_events_total", event="queued", team="support") == queued + 1
    await seat_agent(relay)
    accepted = value("warmline_queue_events_total", event="accepted", team="support")
    await relay.sio.call(A, "accept", "a1", {"ticket_id": ticket_id})
    assert value("warmline_queue_events_total", event="accepted", team="support") == accepted + 1
