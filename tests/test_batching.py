"""common/batching.py: calls that arrive together run together, nobody waits for a batch to fill, and a failed
batch fails only its own calls. Then both ends of the copilot's rankings over a real HTTP connection: the relay's
HttpSuggestSource sends the messages that wait together in one request, and the action server's endpoint
(actions/suggest.py, on a real Sanic server) answers each in order and refuses a malformed batch."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sanic import Sanic

from actions import suggest
from actions.kb_service import KBService
from common.batching import Coalescer
from common.settings import Settings
from handoff.copilot import HttpSuggestSource
from tests.stack import free_port
from warmline.migrate import upgrade


async def test_an_idle_call_runs_at_once_and_calls_meanwhile_go_in_the_next_batch() -> None:
    batches: list[list[int]] = []
    gate = asyncio.Event()

    async def run(items: list[int]) -> list[int]:
        batches.append(items)
        if len(batches) == 1:
            await gate.wait()  # the first pass is slow: others arrive meanwhile
        return [i * 10 for i in items]

    double = Coalescer(run, max_batch=3)
    first = asyncio.ensure_future(double(1))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert batches == [[1]]  # it did not wait for company
    rest = [asyncio.ensure_future(double(i)) for i in range(2, 7)]
    await asyncio.sleep(0)
    gate.set()
    assert await first == 10 and await asyncio.gather(*rest) == [20, 30, 40, 50, 60]
    assert batches == [[1], [2, 3, 4], [5, 6]]  # in arrival order, at most max_batch at a time


async def test_a_failed_batch_fails_only_its_own_calls_and_a_cancelled_caller_harms_nobody() -> None:
    async def run(items: list[str]) -> list[str]:
        await asyncio.sleep(0.01)
        if "bad" in items:
            raise RuntimeError("the pass failed")
        return [item.upper() for item in items]

    upper = Coalescer(run, max_batch=2)
    calls = [asyncio.ensure_future(upper(x)) for x in ("bad", "b", "c", "d")]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert [type(r).__name__ if isinstance(r, Exception) else r for r in results] == [
        "RuntimeError", "RuntimeError", "C", "D",
    ]  # fmt: skip
    gone, stays = asyncio.ensure_future(upper("x")), asyncio.ensure_future(upper("y"))
    await asyncio.sleep(0)
    gone.cancel()
    assert await stays == "Y"

    async def short(items: list[int]) -> list[int]:
        return items[:-1]

    with pytest.raises(RuntimeError, match="a batch of 2 gave 1 results"):
        short_by_one = Coalescer(short, 4)
        await asyncio.gather(short_by_one(1), short_by_one(2))


async def test_the_relay_and_the_action_server_rank_waiting_messages_in_one_request_each_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(state_dir=tmp_path, DATABASE_URL=None)
    upgrade(settings.db_url)
    service = KBService(settings, fine_tune=False)  # the demo KB, live
    await service.start()
    live = await service.current()
    passes: list[list[str]] = []
    rank_many = live.retriever.rank_many

    def counted(texts: list[str], k: int) -> Any:  # the real ranking, with each encoder pass recorded
        passes.append(list(texts))
        return rank_many(texts, k)

    monkeypatch.setattr(live.retriever, "rank_many", counted)
    app = Sanic(f"suggest_test_{free_port()}")
    suggest.register(app, service)
    port = free_port()
    server = await app.create_server(host="127.0.0.1", port=port, return_asyncio_server=True)
    assert server is not None
    await server.startup()
    source = HttpSuggestSource(f"http://127.0.0.1:{port}")
    try:
        texts = ["how can I reset my password?", "where do I find my invoice?", "can I change my plan?"] * 2
        rankings = await asyncio.gather(*(source.rank(text, 2) for text in texts))
        # Asked in the same turn of the relay's loop: one request, one encoder pass, each answer its own message's.
        assert passes == [texts]
        alone = [await source.rank(text, 2) for text in texts[:3]]
        assert passes[1:] == [[text] for text in texts[:3]]
        for ranking, again in zip(rankings, alone * 2, strict=True):
            assert ranking is not None and again is not None and ranking.kb_version == live.version
            assert len(ranking.articles) == 2 and ranking.articles == again.articles
        assert len({r.articles[0].article_id for r in alone if r is not None}) == 3  # three different questions

        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{port}{suggest.ROUTE}"
            for bad in ({}, {"requests": []}, {"requests": [{"text": ""}]}, {"requests": [{"text": "x"}] * 33}):
                async with http.post(url, json=bad) as answer:
                    assert answer.status == 400, bad
    finally:
        await source.close()
        server.close()
        await server.wait_closed()
        await service.stop()
