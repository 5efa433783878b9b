"""The escalation policy of action_answer_kb, as a pure function (no Rasa, no server)."""

from actions.answer import DID_YOU_MEAN, HUMAN_PAYLOAD, NOT_SURE, Step, next_step, reply_for
from knowledge.articles import Article
from knowledge.retrieval import Decision, Scored

REFUND = Article("request-refund", "Refunds", "A person will handle it.", ("refund please",), always_human=True)
WIFI = Article("wifi-password", "Change your Wi-Fi password", "Open the app...", ("wifi password",))
ROUTER = Article("restart-router", "Restart your router", "Unplug it...", ("reboot router",))
BY_ID = {a.id: a for a in (REFUND, WIFI, ROUTER)}


def decide(kind: str, *ids: str) -> Decision:
    return Decision(kind, tuple(Scored(i, 0.5) for i in ids))  # type: ignore[arg-type]


def test_confident_answer_is_given_and_always_human_topics_escalate() -> None:
    assert next_step(decide("answer", "wifi-password"), BY_ID, 0, 0, 3) == Step("answer", article=WIFI)
    step = next_step(decide("answer", "request-refund"), BY_ID, 0, 0, 3)
    assert step.kind == "escalate" and step.reason == "always_human" and step.article == REFUND


def test_first_unsure_turn_offers_choices_the_second_escalates() -> None:
    first = next_step(decide("choices", "wifi-password", "restart-router"), BY_ID, 0, 0, 3)
    assert first == Step("choices", choices=(WIFI, ROUTER))
    second = next_step(decide("choices", "wifi-password"), BY_ID, 1, 1, 3)
    assert second == Step("escalate", reason="low_confidence")


def test_first_unsure_turn_shows_plausible_guesses_only() -> None:
    ranked = Decision(
        "escalate", (Scored("restart-router", 0.5), Scored("wifi-password", 0.21), Scored("request-refund", 0.05))
    )
    assert next_step(ranked, BY_ID, 0, 0, 3) == Step("choices", choices=(ROUTER, WIFI))
    hopeless = Decision("escalate", (Scored("restart-router", 0.1), Scored("wifi-password", 0.05)))
    assert next_step(hopeless, BY_ID, 0, 0, 3) == Step("not_sure")


def test_out_of_scope_first_says_so_and_offers_a_person() -> None:
    step = next_step(decide("escalate"), BY_ID, 0, 0, 3)
    assert step == Step("not_sure")
    assert reply_for(step) == {"text": NOT_SURE, "buttons": [{"title": "Talk to a person", "payload": HUMAN_PAYLOAD}]}


def test_failed_turn_limit_counts_non_consecutive_failures() -> None:
    assert next_step(decide("escalate"), BY_ID, 0, 2, 3) == Step("escalate", reason="failed_turns")
    assert next_step(decide("escalate"), BY_ID, 0, 1, 3) == Step("not_sure")


def test_choices_reply_has_a_button_per_article_and_a_person() -> None:
    reply = reply_for(Step("choices", choices=(WIFI, ROUTER)))
    assert reply is not None and reply["text"] == DID_YOU_MEAN
    assert [b["payload"] for b in reply["buttons"]] == ["/kb_wifi_password", "/kb_restart_router", HUMAN_PAYLOAD]
    assert reply_for(Step("escalate", reason="low_confidence")) is None  # action_escalate speaks next
