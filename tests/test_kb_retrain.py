"""Retrain with the editors' published articles and hot-load the model into the running Rasa (no restart)."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from tests.kb_client import Editor, make_agent
from tests.stack import Stack
from warmline.training import ensure_model, load_into_rasa

pytestmark = pytest.mark.e2e

ARTICLE = {
    "id": "fibre-broadband-cabinet",
    "title": "The green street cabinet",
    "answer": "That green cabinet on your street holds the fibre equipment for your area.",
    "questions": [
        "what is the green cabinet on my street",
        "why is there a green box on the pavement",
        "street cabinet fibre",
    ],
}


async def parse(stack: Stack, text: str) -> dict[str, object]:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{stack.settings.rasa_url}/model/parse", json={"text": text}) as r:
            return await r.json()  # type: ignore[no-any-return]


async def test_retrain_and_hot_load_teach_rasa_the_new_intent(stack: Stack) -> None:
    await make_agent(stack.settings.db_url, "retrain-editor", "retrain-editor-1", "editor")
    editor = await Editor.login(stack.relay_url, "retrain-editor", "retrain-editor-1")
    await editor.ok("POST", "/api/kb/articles", ARTICLE)
    await editor.ok("POST", f"/api/kb/articles/{ARTICLE['id']}/publish", {})
    intent = "kb_" + ARTICLE["id"].replace("-", "_")
    assert (await parse(stack, f"/{intent}"))["intent"]["name"] != intent  # type: ignore[index]
    try:
        started = time.monotonic()
        model, trained = await asyncio.to_thread(ensure_model, stack.settings)  # the stack's database: its KB
        assert trained and model != stack.model
        await asyncio.to_thread(load_into_rasa, stack.settings, model)
        print(f"\nretrain + hot load: {time.monotonic() - started:.1f} s")
        assert (await parse(stack, f"/{intent}"))["intent"]["name"] == intent  # type: ignore[index]
        assert (await parse(stack, "why is there a green box on the pavement"))["intent"]["name"] == intent  # type: ignore[index]
    finally:
        # The stack is shared by the whole session: give the other tests back the model they expect.
        await editor.ok("POST", f"/api/kb/articles/{ARTICLE['id']}/unpublish")
        await asyncio.to_thread(load_into_rasa, stack.settings, stack.model)
