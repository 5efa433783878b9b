"""The Rasa input channel the relay talks to.

Rasa's REST channel returns the bot's replies but not how it read the message; the relay stores that reading
(intent, confidence, top intents, entities) with every customer message, so this channel returns both in one
round trip. Enabled in ``credentials.yml`` as ``bot.channel.WarmlineInput``.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Dict, List, Optional, Text

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

TOP_INTENTS = 3


def summarize_parse(parse_data: Dict[Text, Any]) -> Dict[Text, Any]:
    """Keep the parts of Rasa's parse that agents and editors use; drop the rest (it is large)."""
    intent = parse_data.get("intent") or {}
    ranking = parse_data.get("intent_ranking") or []
    return {
        "intent": intent.get("name"),
        "confidence": intent.get("confidence"),
        "intent_ranking": [
            {"name": r.get("name"), "confidence": r.get("confidence")} for r in ranking[:TOP_INTENTS]
        ],
        "entities": [
            {k: e.get(k) for k in ("entity", "value", "start", "end", "confidence_entity")}
            for e in parse_data.get("entities") or []
        ],
    }


class WarmlineInput(InputChannel):
    @classmethod
    def name(cls) -> Text:
        return "warmline"

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = Blueprint("warmline_webhook", __name__)

        @webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            body = request.json if isinstance(request.json, dict) else {}
            sender, text = body.get("sender"), body.get("message")
            if not isinstance(sender, str) or not sender or not isinstance(text, str):
                return response.json({"error": "sender and message (strings) are required"}, status=400)
            metadata: Optional[Dict[Text, Any]] = body.get("metadata") if isinstance(body.get("metadata"), dict) else None
            collector = CollectingOutputChannel()
            await on_new_message(
                UserMessage(text, collector, sender, input_channel=self.name(), metadata=metadata)
            )
            return response.json({"messages": collector.messages, "parse": await _latest_parse(request, sender)})

        return webhook


async def _latest_parse(request: Request, sender: Text) -> Optional[Dict[Text, Any]]:
    agent = getattr(request.app.ctx, "agent", None)
    if agent is None or agent.tracker_store is None:
        return None
    tracker = await agent.tracker_store.retrieve(sender)
    if tracker is None or not tracker.latest_message:
        return None
    return summarize_parse(tracker.latest_message.parse_data)
