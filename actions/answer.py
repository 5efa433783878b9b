"""``action_answer_kb``: answer from the KB, offer the likely articles, or hand over to a person.

The escalation triggers live here because this is where the bot knows it failed: a second unsure turn in a row,
too many failed turns in one conversation, or an article that must always reach a person.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Literal

from rasa_sdk import Action, Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import feedback, telemetry
from actions.kb_service import live_kb
from actions.unanswered import record_unanswered
from common.settings import Settings
from knowledge.articles import Article
from knowledge.retrieval import Decision

HUMAN_PAYLOAD = "/human"
KB_ARTICLE_ENTITY = "kb_article"  # in bot/domain.yml: names the article a "Did you mean" button picks
TALK_TO_PERSON = {"title": "Talk to a person", "payload": HUMAN_PAYLOAD}
NOT_SURE = "I'm not sure I can answer that. Could you put it another way, or shall I get a person for you?"
# A calibrated score this high makes an article worth offering as a guess: on the demo KB it keeps
# "my bill looks wrong" -> billing/password and "router" -> the two router articles, and drops guesses for
# gibberish or off-topic questions (their best scores stay under 0.15).
GUESS_FLOOR = 0.2
MAX_GUESSES = 3
DID_YOU_MEAN = "I'm not quite sure what you mean. Is it one of these?"

_settings = Settings()


@dataclass(frozen=True)
class Step:
    """What the bot does with one customer message."""

    kind: Literal["answer", "choices", "not_sure", "escalate"]
    article: Article | None = None
    choices: tuple[Article, ...] = ()
    reason: str | None = None


def next_step(
    decision: Decision, by_id: dict[str, Article], low_streak: int, failed_turns: int, max_failed_turns: int
) -> Step:
    """The escalation policy, as a pure function of the retriever's decision and the conversation so far."""
    if decision.kind == "answer":
        article = by_id[decision.candidates[0].article_id]
        if article.always_human:
            return Step("escalate", article=article, reason="always_human")
        return Step("answer", article=article)
    if failed_turns + 1 >= max_failed_turns:
        return Step("escalate", reason="failed_turns")
    if low_streak >= 1:
        return Step("escalate", reason="low_confidence")
    if decision.kind == "choices":
        choices = tuple(by_id[c.article_id] for c in decision.candidates if c.article_id in by_id)
    else:
        # Too unsure to answer, but the first time the bot still shows its best guesses, if any are plausible.
        choices = tuple(
            by_id[c.article_id]
            for c in decision.candidates[:MAX_GUESSES]
            if c.article_id in by_id and c.score >= GUESS_FLOOR
        )
    return Step("choices", choices=choices) if choices else Step("not_sure")


def reply_for(step: Step, known_intents: Collection[str] | None = None) -> dict[str, Any] | None:
    """The message for a step, as ``utter_message`` keyword arguments (None: action_escalate speaks next)."""
    if step.kind == "answer" and step.article is not None:
        return {"text": step.article.answer}
    if step.kind == "choices":
        buttons = [{"title": a.title, "payload": choice_payload(a, known_intents)} for a in step.choices]
        return {"text": DID_YOU_MEAN, "buttons": [*buttons, TALK_TO_PERSON]}
    if step.kind == "not_sure":
        return {"text": NOT_SURE, "buttons": [TALK_TO_PERSON]}
    return None


def choice_payload(article: Article, known_intents: Collection[str] | None = None) -> str:
    """``/kb_<id>``; for an article published after the model was trained, a payload Rasa can still parse.

    Rasa leaves ``/<intent>`` unparsed when the intent is not in its domain, and its classifier may then read
    the raw text as anything (affirm, say); ``nlu_fallback`` is always known and always goes to this action.
    """
    if known_intents is None or article.intent in known_intents:
        return f"/{article.intent}"
    return "/nlu_fallback" + json.dumps({KB_ARTICLE_ENTITY: article.id}, separators=(",", ":"))


def domain_intents(domain: dict[str, Any]) -> set[str] | None:
    """Intent names from the domain Rasa sends (entries are names, or one-key mappings); None if it sent none."""
    names = {next(iter(i)) if isinstance(i, dict) else str(i) for i in domain.get("intents") or []}
    return names or None


def chosen_article(tracker: Tracker, by_intent: dict[str, Article]) -> Article | None:
    """A quick-reply click sends ``/kb_<id>``: answer that article without second-guessing it."""
    if not (tracker.latest_message.get("text") or "").strip().startswith("/"):
        return None
    picked = by_intent.get((tracker.latest_message.get("intent") or {}).get("name") or "")
    if picked is not None:
        return picked
    by_id = {a.id: a for a in by_intent.values()}
    entities = tracker.latest_message.get("entities") or []
    return next(
        (by_id[e["value"]] for e in entities if e.get("entity") == KB_ARTICLE_ENTITY and e.get("value") in by_id), None
    )


class ActionAnswerKB(Action):
    def name(self) -> str:
        return "action_answer_kb"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        live = await live_kb.current()
        by_id = {a.id: a for a in live.kb.articles}
        text = tracker.latest_message.get("text") or ""
        picked = chosen_article(tracker, {a.intent: a for a in live.kb.articles})
        if picked is not None:
            step = (
                Step("escalate", article=picked, reason="always_human")
                if picked.always_human
                else Step("answer", article=picked)
            )
        else:
            started = time.perf_counter()
            decided = live.retriever.decide(text)
            telemetry.decision(time.perf_counter() - started)
            step = next_step(
                decided,
                by_id,
                low_streak=int(tracker.get_slot("low_confidence_streak") or 0),
                failed_turns=int(tracker.get_slot("failed_turns") or 0),
                max_failed_turns=_settings.max_failed_turns,
            )
        if step.kind == "answer" and step.article is not None:
            # Recorded for the reports; with feedback on, the answer carries its yes / no buttons (actions/feedback.py).
            ask, answer_id = _settings.kb_answer_feedback, feedback.new_answer_id()
            feedback.record_answer(answer_id, tracker.sender_id, step.article)
            dispatcher.utter_message(**feedback.answer_reply(step.article, answer_id, ask))
            return [SlotSet("low_confidence_streak", 0), SlotSet(feedback.PENDING_SLOT, answer_id if ask else None)]
        failed = list(tracker.get_slot("failed_turn_texts") or [])
        if step.kind != "escalate" or step.reason != "always_human":
            failed.append(text)
            # Into the editors' inbox, in the background: the reply does not wait for the write.
            record_unanswered(text, tracker.sender_id, step.reason or step.kind)
        events: list[dict[str, Any]] = [
            SlotSet("failed_turns", len(failed)),
            SlotSet("failed_turn_texts", failed),
            SlotSet("low_confidence_streak", int(tracker.get_slot("low_confidence_streak") or 0) + 1),
        ]
        if step.kind == "escalate":
            article_id = step.article.id if step.article else None
            return [
                *events,
                SlotSet("escalation_reason", f"{step.reason}:{article_id or ''}"),
                FollowupAction("action_escalate"),
            ]
        dispatcher.utter_message(**(reply_for(step, domain_intents(domain)) or {}))
        return events
