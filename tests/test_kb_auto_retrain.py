"""With WARMLINE_KB_AUTO_RETRAIN_S set, a publish also retrains Rasa in the background and hot-loads the model."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.kb_client import Editor, make_agent
from tests.stack import Stack, running_stack

pytestmark = pytest.mark.e2e

QUIET_S = "1"
LIMIT_S = 240.0  # rasa train on a busy 2-core machine, plus the quiet period and the load


@pytest.fixture(scope="module")
def retraining_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own: the setting reaches the action server through the environment it inherits."""
    os.environ["WARMLINE_KB_AUTO_RETRAIN_S"] = QUIET_S
    try:
        with running_stack(tmp_path_factory.mktemp("warmline-retrain")) as stack:
            yield stack
    finally:
        os.environ.pop("WARMLINE_KB_AUTO_RETRAIN_S", None)


async def intent_of(stack: Stack, text: str) -> str:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{stack.settings.rasa_url}/model/parse", json={"text": text}) as r:
            return str((await r.json())["intent"]["name"])


async def test_publish_retrains_and_hot_loads_in_the_background(retraining_stack: Stack) -> None:
    stack = retraining_stack
    await make_agent(stack.settings.db_url, "auto-editor", "auto-editor-pass", "editor")
    editor = await Editor.login(stack.relay_url, "auto-editor", "auto-editor-pass")
    article = {
        "id": "street-cabinet",
        "title": "The green street cabinet",
        "answer": "It holds the fibre equipment for your area.",
        "questions": ["what is the green cabinet on my street", "why is there a green box on the pavement"],
    }
    await editor.ok("POST", "/api/kb/articles", article)
    published = time.monotonic()
    await editor.ok("POST", "/api/kb/articles/street-cabinet/publish", {})
    while await intent_of(stack, "/kb_street_cabinet") != "kb_street_cabinet":
        assert time.monotonic() - published < LIMIT_S, "the background retrain never reached Rasa"
        await asyncio.sleep(2)
    print(f"\npublish to retrained model loaded: {time.monotonic() - published:.1f} s")
    models = list(Path(stack.settings.models_dir).glob("warmline-*.tar.gz"))  # noqa: ASYNC240 (a test, after the chat is done)
    assert models, "the retrained model lives in the stack's own state dir"
