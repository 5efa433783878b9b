from actions.escalate import parse_reason
from actions.handoff_card import build_card, transcript

EVENTS = [
    {"event": "action", "name": "action_listen", "timestamp": 1.0},
    {
        "event": "user",
        "text": "my internet is dead",
        "timestamp": 1700000000.0,
        "parse_data": {
            "intent": {"name": "kb_outage_check", "confidence": 0.41},
            "intent_ranking": [
                {"name": "kb_outage_check", "confidence": 0.41},
                {"name": "kb_slow_internet", "confidence": 0.33},
                {"name": "kb_restart_router", "confidence": 0.1},
                {"name": "greet", "confidence": 0.01},
            ],
            "entities": [{"entity": "city", "value": "Lyon", "start": 0, "end": 4}],
        },
    },
    {"event": "bot", "text": "I'm not quite sure what you mean.", "timestamp": 1700000001.0},
    {"event": "bot", "text": "", "timestamp": 1700000001.5, "data": {"custom": {}}},
    {"event": "slot", "name": "failed_turns", "value": 1},
]


def test_transcript_keeps_turns_in_order_with_top_three_intents() -> None:
    turns = transcript(EVENTS)
    assert [t["sender"] for t in turns] == ["customer", "bot"]  # empty bot events (custom payloads) are not turns
    assert turns[0]["intents"] == [
        {"name": "kb_outage_check", "confidence": 0.41},
        {"name": "kb_slow_internet", "confidence": 0.33},
        {"name": "kb_restart_router", "confidence": 0.1},
    ]
    assert turns[0]["entities"] == [{"entity": "city", "value": "Lyon"}]
    assert turns[0]["ts"].startswith("2023-11-14T22:13:20")


def test_card_hides_internal_slots_and_carries_the_reason() -> None:
    card = build_card(
        EVENTS, {"failed_turns": 1.0, "account_number": "A-1", "empty": None}, "low_confidence",
        ["my internet is dead"], {"name": "Ana"}, team="technical",
    )  # fmt: skip
    assert card["slots"] == {"account_number": "A-1"}
    assert card["reason"] == "low_confidence" and card["reason_text"]
    assert card["failed_turns"] == ["my internet is dead"] and card["customer"] == {"name": "Ana"}
    assert card["team"] == "technical" and len(card["intents"]) == 1


def test_asking_for_a_person_wins_over_a_pending_reason() -> None:
    assert parse_reason("low_confidence:", "human") == ("customer_asked", None)
    assert parse_reason("always_human:request-refund", "kb_request_refund") == ("always_human", "request-refund")
    assert parse_reason(None, "nlu_fallback") == ("customer_asked", None)
