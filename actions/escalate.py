"""``action_escalate``: package the conversation into a handoff card and pause the bot for the human phase.

The card goes to the relay as a custom payload (``{"handoff": card}``); the relay turns it into exactly one
ticket and never shows it to the customer. ``ConversationPaused`` keeps Rasa silent until the agent resolves.
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ConversationPaused, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.handoff_card import build_card
from actions.kb_service import live_kb
from actions.unanswered import record_unanswered

CONNECTING = (
    "I'm connecting you with a person now. They will see our whole conversation, so you won't need to repeat anything."
)


def parse_reason(slot_value: str | None, latest_intent: str | None) -> tuple[str, str | None]:
    """(reason, article id) from the ``escalation_reason`` slot; asking for a person always wins."""
    if latest_intent == "human" or not slot_value:
        return "customer_asked", None
    reason, _, article_id = slot_value.partition(":")
    return reason, article_id or None


class ActionEscalate(Action):
    def name(self) -> str:
        return "action_escalate"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        latest_intent = (tracker.latest_message.get("intent") or {}).get("name")
        reason, article_id = parse_reason(tracker.get_slot("escalation_reason"), latest_intent)
        if reason == "customer_asked":
            # Escalations from action_answer_kb were recorded there; a typed "I need a person about X" is news.
            record_unanswered(tracker.latest_message.get("text") or "", tracker.sender_id, reason)
        article = (await live_kb.current()).kb.by_id(article_id) if article_id else None
        metadata = tracker.latest_message.get("metadata") or {}
        card = build_card(
            events=list(tracker.events),
            slots=tracker.current_slot_values(),
            reason=reason,
            failed_turns=list(tracker.get_slot("failed_turn_texts") or []),
            customer=metadata.get("customer") or {},
            article_id=article_id,
            team=article.team if article else None,
        )
        dispatcher.utter_message(text=CONNECTING)
        dispatcher.utter_message(json_message={"handoff": card})
        return [
            ConversationPaused(),
            SlotSet("low_confidence_streak", 0),
            SlotSet("failed_turns", 0),
            SlotSet("failed_turn_texts", []),
            SlotSet("escalation_reason", None),
        ]
