"""The Rasa input channel the relay talks to.

Rasa's REST channel returns the bot's replies but not how it read the message; the relay stores that reading
(intent, confidence, top intents, entities) with every customer message, so this channel returns both in one
round trip. Enabled in ``credentials.yml`` as ``bot.channel.WarmlineInput``.
"""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.agent import Agent
from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot import rasa_hotspots

rasa_hotspots.install()  # Rasa loads this module before it serves: the per-turn hot spots are fixed from the start

TOP_INTENTS = 3


def summarize_parse(parse_data: dict[str, Any]) -> dict[str, Any]:
    """Keep the parts of Rasa's parse that agents and editors use; drop the rest (it is large)."""
    intent = parse_data.get("intent") or {}
    ranking = parse_data.get("intent_ranking") or []
    return {
        "intent": intent.get("name"),
        "confidence": intent.get("confidence"),
        "intent_ranking": [{"name": r.get("name"), "confidence": r.get("confidence")} for r in ranking[:TOP_INTENTS]],
        "entities": [
            {k: e.get(k) for k in ("entity", "value", "start", "end", "confidence_entity")}
            for e in parse_data.get("entities") or []
        ],
    }


class WarmlineInput(InputChannel):
    @classmethod
    def name(cls) -> str:
        return "warmline"

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        # ``on_new_message`` is Agent.handle_message; we call the agent ourselves to keep the parse (see below).
        webhook = Blueprint("warmline_webhook", __name__)

        @webhook.listener("after_server_start")
        async def freeze_startup_objects(_app: Any, _loop: Any) -> None:
            # Rasa's modules and the loaded model are long-lived objects; left in the collector's oldest
            # generation, every full collection walks them all: 230-360 ms pauses, the p99 of bench/escalation.py.
            # Frozen once the model is loaded, a full collection walks only newer objects (as
            # common/long_lived.py does for our servers; this runs in Rasa's environment, which lacks it).
            # A model hot-loaded later is not frozen; reloads are rare.
            gc.collect()
            gc.freeze()

        @webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            body = request.json if isinstance(request.json, dict) else {}
            sender, text = body.get("sender"), body.get("message")
            if not isinstance(sender, str) or not sender or not isinstance(text, str):
                return response.json({"error": "sender and message (strings) are required"}, status=400)
            metadata: dict[str, Any] | None = body.get("metadata") if isinstance(body.get("metadata"), dict) else None
            collector = CollectingOutputChannel()
            message = UserMessage(text, collector, sender, input_channel=self.name(), metadata=metadata)
            agent = getattr(request.app.ctx, "agent", None)
            if agent is None or not agent.is_ready():
                return response.json({"error": "the bot's model is not loaded yet"}, status=503)
            parse, paused = await handle_message(agent, message)
            if not collector.messages and not paused:
                # A custom action that cannot reach the action server runs as an action with no events (Rasa logs
                # the exception and goes on), so the turn has no reply: an outage, which the relay tells the customer.
                return response.json({"error": "the bot produced no reply (is the action server up?)"}, status=503)
            return response.json({"messages": collector.messages, "parse": parse})

        return webhook


async def handle_message(agent: Agent, message: UserMessage) -> tuple[dict[str, Any] | None, bool]:
    """``Agent.handle_message`` step by step, keeping the tracker so its parse needs no second fetch.

    Fetching the tracker again after Rasa saved it replays every event of the conversation (milliseconds on a long
    chat, on every turn); this mirrors ``MessageProcessor.handle_message`` of Rasa 3.6.21, which is pinned.
    """
    processor = agent.processor
    async with agent.lock_store.lock(message.sender_id):
        tracker = await processor.log_message(message, should_save_tracker=False)
        tracker = await processor.run_action_extract_slots(message.output_channel, tracker)
        await processor._run_prediction_loop(message.output_channel, tracker)
        await processor.run_anonymization_pipeline(tracker)
        await processor.save_tracker(tracker)
    parse = summarize_parse(tracker.latest_message.parse_data) if tracker.latest_message else None
    return parse, tracker.is_paused()
