"""The copilot's suggestion policy as pure functions (handoff/copilot.py): what is shown at which confidence, no
duplicates, nothing below the floor, canned responses that match, the question an answer replied to."""

from __future__ import annotations

from handoff import copilot
from handoff.canned import Canned
from handoff.copilot import FLOOR, Ranked, Ranking, Said

ANSWER_AT = 0.71


def art(article_id: str, confidence: float, answer: str | None = None) -> Ranked:
    return Ranked(article_id, article_id.replace("-", " ").title(), answer or f"Answer of {article_id}.", "support",
                  confidence)  # fmt: skip


def ids(picked: list[Ranked]) -> list[str]:
    return [r.article_id for r in picked]


def test_nothing_below_the_floor_is_shown() -> None:
    picked = copilot.pick_articles([art("a", 0.5), art("b", FLOOR - 0.001), art("c", 0.02)], ANSWER_AT)
    assert ids(picked) == ["a"]
    assert copilot.pick_articles([art("a", 0.1), art("b", 0.05)], ANSWER_AT) == []


def test_at_most_three_best_first_whatever_order_they_came_in() -> None:
    ranked = [art("d", 0.3), art("a", 0.6), art("c", 0.4), art("b", 0.5), art("e", 0.2)]
    assert ids(copilot.pick_articles(ranked, ANSWER_AT)) == ["a", "b", "c"]


def test_no_article_twice_and_no_two_with_the_same_answer() -> None:
    ranked = [art("a", 0.6), art("a", 0.55), art("b", 0.5, "Answer of a."), art("c", 0.45, " answer   OF a. ")]
    ranked.append(art("d", 0.3))
    assert ids(copilot.pick_articles(ranked, ANSWER_AT)) == ["a", "d"]


def test_next_to_a_confident_top_only_close_runners_up_are_shown() -> None:
    ranked = [art("top", 0.9), art("close", 0.5), art("far", 0.3)]
    assert ids(copilot.pick_articles(ranked, ANSWER_AT)) == ["top", "close"]  # 0.3 < 0.5 * 0.9
    # Without a confident top the agent sees every plausible one (they decide, not the threshold).
    assert ids(copilot.pick_articles([art("a", 0.6), art("b", 0.2), art("c", 0.16)], ANSWER_AT)) == ["a", "b", "c"]


def test_levels_follow_the_bots_own_threshold() -> None:
    assert copilot.level(0.71, ANSWER_AT) == "high"
    assert copilot.level(0.7, ANSWER_AT) == "medium"
    assert copilot.level(copilot.MEDIUM, ANSWER_AT) == "medium"
    assert copilot.level(copilot.MEDIUM - 0.01, ANSWER_AT) == "low"


def test_an_excerpt_is_whole_words_with_an_ellipsis() -> None:
    assert copilot.excerpt("Short   answer.\n") == "Short answer."
    long = "word " * 100
    cut = copilot.excerpt(long, 30)
    assert cut.endswith("…") and len(cut) <= 31 and cut[:-1].split() == ["word"] * len(cut[:-1].split())


CANNED = [
    Canned(1, "refund", "Refund timeline", "Refunds reach your card in 5-7 days, {{customer.name}}.", None),
    Canned(2, "reset", "Password reset link", "I've sent you a password reset link.", None),
    Canned(3, "vip", "VIP refund", "As a VIP your refund is instant.", "vip"),
    Canned(4, "hello", "Greeting", "Hi {{customer.name}}, how can I help?", None),
    Canned(5, "refund2", "Refund timeline (copy)", "Refunds reach your card in 5-7 days, {{customer.name}}.", None),
]


def test_canned_responses_match_on_content_words_of_the_agents_teams_only() -> None:
    found = copilot.match_canned("When will my refund reach my card?", CANNED, {"support"})
    assert [c.id for c in found] == [1]  # 3 is another team's; 5 duplicates 1's text; "my", "will" say nothing
    assert 3 in [c.id for c in copilot.match_canned("refund please", CANNED, {"vip"})]
    assert 3 not in [c.id for c in copilot.match_canned("refund please", CANNED, {"support"})]
    assert copilot.match_canned("thanks!", CANNED, {"support"}) == []


def test_a_canned_response_that_repeats_a_suggested_article_is_dropped() -> None:
    text = "Refunds reach your card in 5-7 days, {{customer.name}}."
    assert copilot.match_canned("refund card timeline", CANNED, {"support"}, exclude_texts=[text]) == []


def test_suggestions_are_rendered_for_the_ticket() -> None:
    ranking = Ranking("r3", ANSWER_AT, (art("refunds", 0.8, "Hi {{customer.name}}, refunds take 5 days."),))
    context = {"customer": {"name": "Ana"}, "agent": {"name": "Ada"}, "ticket": {"id": 7}}
    articles, canned = copilot.suggestions(ranking, CANNED, {"support"}, "refund to my card", context)
    assert [(a.article_id, a.level, a.text) for a in articles] == [("refunds", "high", "Hi Ana, refunds take 5 days.")]
    assert [c.text for c in canned] == ["Refunds reach your card in 5-7 days, Ana."]


def test_payloads_and_small_talk_get_no_suggestions() -> None:
    assert not copilot.worth_suggesting("/human")
    assert not copilot.worth_suggesting("ok thanks!")
    assert copilot.worth_suggesting("my router blinks red")


def test_the_last_unanswered_question_and_the_question_an_answer_replied_to() -> None:
    chat = [
        Said(1, "customer", "how do I pay my bill"), Said(2, "bot", "Like this."), Said(3, "customer", "/human"),
        Said(4, "system", "Ada joined the chat."),
    ]  # fmt: skip
    assert copilot.last_unanswered(chat) == chat[0]
    chat += [Said(5, "agent", "Hi!"), Said(6, "customer", "can I pay by card"), Said(7, "customer", "thanks")]
    assert copilot.last_unanswered(chat) == chat[5]
    chat.append(Said(8, "agent", "Yes, any card."))
    assert copilot.last_unanswered(chat) is None
    assert copilot.question_before(chat, 8) == chat[5]
    assert copilot.question_before(chat, 5) == chat[0]


def test_asking_for_a_person_or_saying_thanks_is_not_the_question() -> None:
    chat = [
        copilot.said_of(1, "customer", "my router blinks red all night", {"intent": {"name": "nlu_fallback"}}),
        copilot.said_of(2, "customer", "I want to talk to a human", {"intent": "human", "confidence": 0.9}),
        copilot.said_of(3, "customer", "thank you so much for that", {"intent": {"name": "thank"}}),
    ]
    assert copilot.last_unanswered(chat) == chat[0]
    assert copilot.said_of(4, "customer", "hi", None).intent is None


def test_sent_unchanged_or_edited() -> None:
    assert copilot.outcome("Refunds take 5 days.", " Refunds  take 5 days.\n") == "unchanged"
    assert copilot.outcome("Refunds take 5 days.", "Refunds take 5 working days.") == "edited"


def test_a_draft_id_is_a_free_slug() -> None:
    assert copilot.draft_id("Can I pay with PayPal?", set()) == "pay-paypal"
    assert copilot.draft_id("Can I pay with PayPal?", {"pay-paypal"}) == "pay-paypal-2"
    assert copilot.draft_id("???", set()) == "agent-answer"
    assert len(copilot.inbox_reason("A very long agent name indeed", 123456)) <= 32
