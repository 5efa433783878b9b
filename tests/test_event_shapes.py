"""The event catalogue holds: every event has a model, the docs table is the catalogue's, nothing in the relay
emits around the outbox, and the customer-bound messages keep Rasa's shapes. (The handlers' actual emits are
checked as they happen in tests/test_handlers.py, through tests/fakes.py.)"""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

import pytest

from handoff import events
from handoff.bot_replies import bot_uttered, split_reply
from handoff.models import Message
from tests.fakes import RASA_SHAPES, check_shape

ROOT = Path(__file__).resolve().parent.parent


def test_the_docs_table_is_the_catalogue() -> None:
    doc = (ROOT / "docs" / "events.md").read_text()
    assert events.catalogue_table() in doc, "docs/events.md is stale: regenerate it with python -m handoff.events"


def test_each_event_is_listed_once_per_namespace_and_direction() -> None:
    keys = [(e.namespace, e.direction, e.name) for e in events.CATALOGUE]
    assert len(keys) == len(set(keys))
    for e in events.CATALOGUE:
        base = events.Incoming if e.direction is events.Direction.IN else (events.Payload, events.RootModel)
        assert issubclass(e.model, base), f"{e.name}: {e.model.__name__} is not an {e.direction.value} model"


def test_nothing_in_the_relay_emits_around_the_outbox() -> None:
    """Only handoff/outbox.py calls Socket.IO's emit: every payload is then its event's model."""
    offenders = []
    for path in (ROOT / "handoff").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "emit":
                target = ast.unparse(node.func.value)
                if path.name == "pubsub.py" and target == "super()":
                    continue  # the Socket.IO manager's own delivery, below the outbox, passing an emit down
                if not target.endswith(("out", "outbox")) and path.name != "outbox.py":
                    offenders.append(f"{path.name}:{node.lineno} {target}.emit")
    assert offenders == []


def _stored(text: str, data: dict | None, sender: str = "bot") -> Message:
    message = Message(id=3, sender=sender, text=text, data=data, client_id=None)
    message.created_at = datetime(2026, 1, 1, tzinfo=UTC)
    return message


@pytest.mark.parametrize(
    "rasa_message",
    [
        {"text": "plain"},
        {"text": "pick", "buttons": [{"title": "A", "payload": "/a"}, {"title": "B", "payload": "/b"}]},
        {"text": "look", "image": "https://example.org/router.png"},
        {"image": "https://example.org/router.png"},
        {"text": "", "elements": [{"title": "Plan", "buttons": []}, {"title": "Other", "buttons": []}]},
        {"attachment": {"type": "video", "payload": {"src": "https://example.org/v.mp4"}}},
    ],
)
def test_every_reply_the_bot_can_make_goes_out_in_a_shape_rasa_emits(rasa_message: dict) -> None:
    text, data = split_reply(rasa_message)
    out = [events.wire(e) for e in bot_uttered(_stored(text, data))]
    assert out
    for payload in out:
        check_shape(events.CUSTOMER_NAMESPACE, "bot_uttered", payload)
        assert frozenset(payload) - {"metadata"} in RASA_SHAPES


def test_a_custom_payload_goes_out_as_is_with_metadata_beside_it() -> None:
    _, data = split_reply({"custom": {"carousel": [1, 2]}})
    (payload,) = [events.wire(e) for e in bot_uttered(_stored("", data))]
    assert payload["carousel"] == [1, 2] and set(payload) == {"carousel", "metadata"}


def test_an_agents_message_is_a_text_reply_with_the_agent_in_metadata() -> None:
    (payload,) = [events.wire(e) for e in bot_uttered(_stored("Hi, Ada here", {"agent_name": "Ada"}, "agent"))]
    assert payload == {
        "text": "Hi, Ada here",
        "metadata": {"message_id": 3, "sender": "agent", "ts": "2026-01-01T00:00:00+00:00", "agent_name": "Ada"},
    }
