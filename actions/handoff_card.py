"""Package a conversation into the handoff card an agent starts from. Pure functions over Rasa tracker events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

TOP_INTENTS = 3
# Slots the bot uses for its own bookkeeping; the agent's card shows only what the customer told us.
INTERNAL_SLOTS = frozenset({"low_confidence_streak", "failed_turns", "failed_turn_texts", "escalation_reason"})

REASONS = {
    "customer_asked": "The customer asked for a person.",
    "low_confidence": "The bot was unsure twice in a row.",
    "always_human": "This topic is always handled by a person.",
    "failed_turns": "The bot could not answer several times in this conversation.",
}


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat()


def transcript(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every customer and bot turn, in order, with its time; customer turns carry the bot's reading of them."""
    turns: list[dict[str, Any]] = []
    for event in events:
        kind = event.get("event")
        if kind == "user":
            parse = event.get("parse_data") or {}
            ranking = parse.get("intent_ranking") or ([parse["intent"]] if parse.get("intent") else [])
            turns.append(
                {
                    "sender": "customer",
                    "text": event.get("text") or "",
                    "ts": _iso(event.get("timestamp")),
                    "intents": [
                        {"name": r.get("name"), "confidence": round(float(r.get("confidence") or 0.0), 4)}
                        for r in ranking[:TOP_INTENTS]
                    ],
                    "entities": [
                        {"entity": e.get("entity"), "value": e.get("value")} for e in parse.get("entities") or []
                    ],
                }
            )
        elif kind == "bot" and (event.get("text") or "").strip():
            turns.append({"sender": "bot", "text": event["text"], "ts": _iso(event.get("timestamp"))})
    return turns


def build_card(
    events: list[dict[str, Any]],
    slots: dict[str, Any],
    reason: str,
    failed_turns: list[str],
    customer: dict[str, Any],
    article_id: str | None = None,
    team: str | None = None,
) -> dict[str, Any]:
    turns = transcript(events)
    return {
        "reason": reason,
        "reason_text": REASONS.get(reason, reason),
        "article_id": article_id,
        "team": team,
        "customer": customer,
        "slots": {k: v for k, v in slots.items() if k not in INTERNAL_SLOTS and v is not None},
        "failed_turns": failed_turns,
        "transcript": turns,
        "intents": [t["intents"] for t in turns if t["sender"] == "customer"],
    }
