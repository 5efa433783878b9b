"""Pure parts of the relay and the operator glue: payload validation, reply conversion, settings, ports."""

import socket
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from common.settings import Settings, normalize_db_url
from handoff import events
from handoff.bot_replies import bot_uttered, split_reply
from handoff.models import Message
from knowledge.articles import ArticleError, parse_articles
from knowledge.export import domain_data, nlu_data, rules_data
from warmline.processes import Service, StartError, Supervisor


def test_user_uttered_validation() -> None:
    assert events.UserUttered.model_validate({"message": "hi", "client_id": "abc-1"}).message == "hi"
    for bad in ({"message": ""}, {"message": "  \n"}, {"message": 5}, {}, {"message": "x", "client_id": "a b"}):
        with pytest.raises(ValidationError):
            events.UserUttered.model_validate(bad)


def test_session_ids_must_look_like_ids() -> None:
    assert events.SessionRequest.model_validate({"session_id": None}).session_id is None
    assert events.SessionRequest.model_validate({"session_id": ""}).session_id is None
    assert events.SessionRequest.model_validate({"session_id": "a1b2c3d4e5"}).session_id == "a1b2c3d4e5"
    for bad in ("short", "../../etc/passwd", "x" * 65, "has space here"):
        with pytest.raises(ValidationError):
            events.SessionRequest.model_validate({"session_id": bad})


def test_customer_context_drops_unknown_keys() -> None:
    context = events.CustomerContext.model_validate({"name": "Ana", "isAdmin": True})
    assert context.model_dump(exclude_none=True) == {"name": "Ana"}


def test_rasa_replies_become_socketio_payloads() -> None:
    text, data = split_reply({"recipient_id": "x", "text": "Pick one", "buttons": [{"title": "A", "payload": "/a"}]})
    assert text == "Pick one"
    assert data == {"quick_replies": [{"content_type": "text", "title": "A", "payload": "/a"}]}
    assert split_reply({"text": "plain"}) == ("plain", None)
    _, custom = split_reply({"custom": {"handoff": {"reason": "x"}}})
    assert custom == {"custom": {"handoff": {"reason": "x"}}}

    stored = Message(id=7, sender="bot", text="Pick one", data=data, client_id=None)
    stored.created_at = datetime(2026, 1, 1, tzinfo=UTC)
    (payload,) = [events.wire(e) for e in bot_uttered(stored)]
    assert payload == {  # Rasa's {text, quick_replies}, Warmline's extras under metadata
        "text": "Pick one",
        "quick_replies": [{"content_type": "text", "title": "A", "payload": "/a"}],
        "metadata": {"message_id": 7, "sender": "bot", "ts": "2026-01-01T00:00:00+00:00"},
    }


def test_kb_export_makes_one_intent_and_rule_per_article() -> None:
    kb = parse_articles(
        [{"id": "reset-password", "title": "Reset", "answer": "Do this.", "questions": ["how to   reset\npassword"]}],
        "test",
    )
    assert domain_data(kb)["intents"] == ["kb_reset_password"]
    assert nlu_data(kb)["nlu"][0] == {"intent": "kb_reset_password", "examples": "- how to reset password\n"}
    assert rules_data(kb)["rules"][0]["steps"] == [{"intent": "kb_reset_password"}, {"action": "action_answer_kb"}]


def test_kb_file_errors_name_the_problem() -> None:
    with pytest.raises(ArticleError, match="duplicate article id"):
        parse_articles([{"id": "a-1", "title": "T", "answer": "A", "questions": ["q"]}] * 2, "kb.yml")
    with pytest.raises(ArticleError, match="answer is empty"):
        parse_articles([{"id": "a-1", "title": "T", "answer": " ", "questions": ["q"]}], "kb.yml")
    with pytest.raises(ArticleError, match="lowercase slug"):
        parse_articles([{"id": "Bad Id", "title": "T", "answer": "A", "questions": ["q"]}], "kb.yml")


def test_database_urls_get_async_drivers() -> None:
    assert normalize_db_url("postgresql://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert normalize_db_url("postgres://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert normalize_db_url("sqlite:////tmp/x.db") == "sqlite+aiosqlite:////tmp/x.db"
    assert Settings(DATABASE_URL=None).db_url.startswith("sqlite+aiosqlite:///")


def test_a_busy_port_gets_a_clear_message(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        supervisor = Supervisor(Settings(state_dir=tmp_path))
        with pytest.raises(StartError, match=f"relay on port {port}.*WARMLINE_RELAY_PORT"):
            supervisor.check_ports([Service("relay", ["true"], port, "http://127.0.0.1/")])


def test_a_service_that_dies_at_start_is_reported_with_its_log(tmp_path) -> None:  # type: ignore[no-untyped-def]
    supervisor = Supervisor(Settings(state_dir=tmp_path))
    dying = Service("dying", ["sh", "-c", "echo boom; exit 3"], 1, "http://127.0.0.1:1/", ready_timeout_s=10)
    with pytest.raises(StartError, match=r"(?s)dying exited with code 3.*boom"):
        supervisor.start(dying)
    supervisor.stop_all()
