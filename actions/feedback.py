"""Feedback on the bot's KB answers: "Did that answer your question?" with yes / no quick replies, once per answer.

``action_answer_kb`` records each answer it gives (``record_answer``: a ``kb_answers`` row with an id made here, in
the background like the unanswered inbox) and, when ``WARMLINE_KB_ANSWER_FEEDBACK`` is on, puts two quick replies
on the answer that name it: ``/feedback_yes{"kb_answer": "<id>"}`` and ``/feedback_no{...}``. ``action_kb_feedback``
stores the first yes or no of each answer (a conditional update: a second click changes nothing) and, on "no",
offers a person. A typed "yes, that helped" (no id) counts for the last answer given, through the slot
``kb_answer_pending``, which the feedback clears.

The table is reached through SQLAlchemy Core by name: the action server sits beside the relay, not above it, so
it does not import the relay's models (``handoff.models.KbAnswer``; tests/test_reports_feedback.py checks the two
agree).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import Boolean, String, column, insert, table, update

from actions.kb_service import live_kb
from common.clock import utcnow
from common.db import UtcDateTime
from knowledge.articles import Article

log = logging.getLogger(__name__)

FEEDBACK_YES = "feedback_yes"
FEEDBACK_NO = "feedback_no"
ANSWER_ENTITY = "kb_answer"  # in bot/domain.yml: names the answer a yes / no button is about
PENDING_SLOT = "kb_answer_pending"
HUMAN_PAYLOAD = "/human"
YES_TITLE = "Yes, that answered my question"
NO_TITLE = "No, it didn't"
THANKS = "Great, glad that helped! Anything else I can do for you?"
SORRY = "Sorry that didn't answer it. Would you like to talk to a person?"
NOTED = "Thanks, I've noted that already."

KB_ANSWERS = table(
    "kb_answers",
    column("id", String(32)),
    column("conversation_id", String(64)),
    column("article_id", String(128)),
    column("team", String(64)),
    column("helpful", Boolean),
    column("created_at", UtcDateTime()),
    column("feedback_at", UtcDateTime()),
)

# Strong references to running writes: the event loop keeps only weak ones.
_pending: set[asyncio.Task[None]] = set()


def new_answer_id() -> str:
    return uuid.uuid4().hex


def feedback_buttons(answer_id: str) -> list[dict[str, str]]:
    """The yes / no quick replies of one answer; the payload names the answer, so each counts once."""
    entity = '{"' + ANSWER_ENTITY + '":"' + answer_id + '"}'
    return [
        {"title": YES_TITLE, "payload": f"/{FEEDBACK_YES}{entity}"},
        {"title": NO_TITLE, "payload": f"/{FEEDBACK_NO}{entity}"},
    ]


def answer_reply(article: Article, answer_id: str, ask: bool) -> dict[str, Any]:
    """``utter_message`` arguments for a KB answer: its text, and the two feedback buttons when ``ask``."""
    reply: dict[str, Any] = {"text": article.answer}
    if ask:
        reply["buttons"] = feedback_buttons(answer_id)
    return reply


def record_answer(answer_id: str, conversation_id: str, article: Article) -> None:
    """Store the answer in the background: the customer's reply does not wait for the write."""
    row = {
        "id": answer_id, "conversation_id": conversation_id, "article_id": article.id, "team": article.team,
        "helpful": None, "created_at": utcnow(), "feedback_at": None,
    }  # fmt: skip
    task = asyncio.get_running_loop().create_task(_insert(row))
    _pending.add(task)
    task.add_done_callback(_pending.discard)


async def _insert(row: dict[str, Any]) -> None:
    try:
        await live_kb.writer.execute(insert(KB_ANSWERS).values(**row))
    except Exception:
        log.exception("could not record a KB answer")


async def drain() -> None:
    """Wait for pending answer writes (before a feedback update, in tests, at shutdown)."""
    if _pending:
        await asyncio.gather(*list(_pending), return_exceptions=True)


async def record_feedback(answer_id: str, conversation_id: str, helpful: bool) -> bool:
    """The customer's first yes / no to this answer of their own conversation; False if it was told already (or
    is not theirs): the first one stands."""
    await drain()  # the answer's own row may still be on its way
    async with live_kb.sessions() as s, s.begin():
        result = await s.execute(
            update(KB_ANSWERS)
            .where(
                KB_ANSWERS.c.id == answer_id,
                KB_ANSWERS.c.conversation_id == conversation_id,
                KB_ANSWERS.c.helpful.is_(None),
            )
            .values(helpful=helpful, feedback_at=utcnow())
        )
    return result.rowcount == 1  # type: ignore[attr-defined]


def answer_named(tracker: Tracker) -> str | None:
    """The answer a feedback message is about: the button's entity, else the last answer still awaiting one."""
    for entity in tracker.latest_message.get("entities") or []:
        if entity.get("entity") == ANSWER_ENTITY and entity.get("value"):
            return str(entity["value"])
    pending = tracker.get_slot(PENDING_SLOT)
    return str(pending) if pending else None


class ActionKbFeedback(Action):
    def name(self) -> str:
        return "action_kb_feedback"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        helpful = (tracker.latest_message.get("intent") or {}).get("name") == FEEDBACK_YES
        answer_id = answer_named(tracker)
        stored = answer_id is not None and await record_feedback(answer_id, tracker.sender_id, helpful)
        if helpful:
            dispatcher.utter_message(text=THANKS if stored or answer_id is None else NOTED)
        else:  # a "no" always offers a person, counted or not
            dispatcher.utter_message(text=SORRY, buttons=[{"title": "Talk to a person", "payload": HUMAN_PAYLOAD}])
        clear = answer_id is not None and answer_id == tracker.get_slot(PENDING_SLOT)
        return [SlotSet(PENDING_SLOT, None)] if clear else []
