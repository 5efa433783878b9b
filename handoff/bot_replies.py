"""Rasa's replies in and out: what the bot said (as Rasa's CollectingOutputChannel collects it) becomes a stored
message, and a stored message becomes the ``bot_uttered`` events Rasa 3.6's socketio channel would have emitted
for it (its ``OutputChannel.send_response``: the text, with quick replies if any, then a custom payload, an image,
an attachment and generic-template elements, each an event of its own)."""

from __future__ import annotations

from typing import Any

from handoff.events import BotUttered, HistoryMessage, MessageMeta, QuickReply
from handoff.models import AnyMessage


def split_reply(rasa_message: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """A CollectingOutputChannel message -> (text to store, the rest of it to store beside, or None)."""
    text = rasa_message.get("text") or ""
    data: dict[str, Any] = {}
    buttons = rasa_message.get("buttons") or rasa_message.get("quick_replies")
    if buttons:
        data["quick_replies"] = [
            {"content_type": "text", "title": b.get("title", ""), "payload": b.get("payload", b.get("title", ""))}
            for b in buttons
        ]
    if rasa_message.get("image"):
        data["attachment"] = {"type": "image", "payload": {"src": rasa_message["image"]}}
    elif isinstance(rasa_message.get("attachment"), dict):
        data["attachment"] = rasa_message["attachment"]
    if isinstance(rasa_message.get("custom"), dict):
        data["custom"] = rasa_message["custom"]
    if isinstance(rasa_message.get("elements"), list):
        data["elements"] = rasa_message["elements"]
    return text, data or None


def handoff_card_of(data: dict[str, Any] | None) -> dict[str, Any] | None:
    """The handoff card ``action_escalate`` puts in a reply's custom payload, if this reply carries one."""
    card = ((data or {}).get("custom") or {}).get("handoff")
    return card if isinstance(card, dict) else None


def meta_of(message: AnyMessage, agent_name: str | None = None) -> MessageMeta:
    data = message.data or {}
    return MessageMeta(
        message_id=message.id,
        sender=message.sender,
        ts=message.created_at.isoformat(),
        client_id=message.client_id,
        agent_name=agent_name or data.get("agent_name"),
    )


def bot_uttered(message: AnyMessage, agent_name: str | None = None) -> list[BotUttered]:
    """The customer's events for one stored message (bot, agent or system), in Rasa's shapes plus ``metadata``."""
    meta = meta_of(message, agent_name)
    data = message.data or {}
    out: list[BotUttered] = []
    quick = [QuickReply.model_validate(q) for q in data.get("quick_replies") or []]
    if quick:
        out.append(BotUttered(text=message.text, quick_replies=quick, metadata=meta))
    elif message.text:
        out.append(BotUttered(text=message.text, metadata=meta))
    if isinstance(data.get("custom"), dict):  # as is: its own keys, plus ours under metadata
        out.append(BotUttered.model_validate({**data["custom"], "metadata": meta}))
    if isinstance(data.get("attachment"), dict):
        out.append(BotUttered(attachment=data["attachment"], metadata=meta))
    for element in data.get("elements") or []:
        template = {"type": "template", "payload": {"template_type": "generic", "elements": element}}
        out.append(BotUttered(attachment=template, metadata=meta))
    return out


def history_message(message: AnyMessage) -> HistoryMessage:
    """A stored message in the relay's own history and agent events (flat: Warmline's own pages read it)."""
    data = message.data or {}
    return HistoryMessage(
        message_id=message.id,
        sender=message.sender,
        text=message.text,
        client_id=message.client_id,
        ts=message.created_at.isoformat(),
        quick_replies=data.get("quick_replies"),
        agent_name=data.get("agent_name"),
    )
