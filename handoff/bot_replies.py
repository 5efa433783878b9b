"""Turn Rasa's collected replies into what Rasa's socketio channel would have emitted, and back from storage."""

from __future__ import annotations

from typing import Any

from handoff.models import Message


def split_reply(rasa_message: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """A CollectingOutputChannel message -> (text to store, the rest of the socket payload or None)."""
    text = rasa_message.get("text") or ""
    data: dict[str, Any] = {}
    if rasa_message.get("buttons"):
        data["quick_replies"] = [
            {"content_type": "text", "title": b.get("title", ""), "payload": b.get("payload", "")}
            for b in rasa_message["buttons"]
        ]
    if rasa_message.get("image"):
        data["attachment"] = {"type": "image", "payload": {"src": rasa_message["image"]}}
    if isinstance(rasa_message.get("custom"), dict):
        data["custom"] = rasa_message["custom"]
    return text, data or None


def handoff_card_of(data: dict[str, Any] | None) -> dict[str, Any] | None:
    """The handoff card ``action_escalate`` puts in a reply's custom payload, if this reply carries one."""
    card = ((data or {}).get("custom") or {}).get("handoff")
    return card if isinstance(card, dict) else None


def message_event(message: Message) -> dict[str, Any]:
    """The ``bot_uttered``-shaped payload for a stored message (text, quick replies, our id and timestamp)."""
    payload: dict[str, Any] = {
        "message_id": message.id,
        "sender": message.sender,
        "ts": message.created_at.isoformat(),
    }
    data = message.data or {}
    if "custom" in data:
        # Rasa emits a custom payload as-is rather than as text.
        payload.update(data["custom"])
    else:
        payload["text"] = message.text
    for key in ("quick_replies", "attachment", "agent_name"):
        if key in data:
            payload[key] = data[key]
    if message.client_id:
        payload["client_id"] = message.client_id
    return payload
