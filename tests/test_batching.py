"""common/batching.py: calls that arrive together run together, nobody waits for a batch to fill, and a failed
batch fails only its own calls. Then both ends of the copilot's rankings: the relay's HttpSuggestSource sends the
messages that wait together in one request to the real action server (``warmline actions``, actions/suggest.py),
which answers each with its own ranking and refuses a malformed batch."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from common.batching import Coalescer
from handoff.copilot import HttpSuggestSource, Ranking, actions_base_url
from knowledge import suggest_wire
from tests.stack import running_action_server


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


async def test_a_newer_call_with_the_same_key_takes_the_waiting_ones_place() -> None:
    batches: list[list[str]] = []
    gate = asyncio.Event()

    async def run(items: list[str]) -> list[str]:
        batches.append(items)
        if len(batches) == 1:
            await gate.wait()
        return [item.upper() for item in items]

    upper = Coalescer(run, max_batch=8)
    running = asyncio.ensure_future(upper("a1", key="a"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert batches == [["a1"]]
    later = [asyncio.ensure_future(upper(text, key=text[0])) for text in ("a2", "b1", "a3", "c1", "a4")]
    unkeyed = asyncio.ensure_future(upper("x"))
    await asyncio.sleep(0)
    gate.set()
    assert await running == "A1"  # already running when a2 came: a newer call never takes a running one's result
    results = await asyncio.gather(*later, unkeyed, return_exceptions=True)
    assert [r if isinstance(r, str) else type(r).__name__ for r in results] == [
        "Superseded", "B1", "Superseded", "C1", "A4", "X",
    ]  # fmt: skip
    assert batches == [["a1"], ["a4", "b1", "c1", "x"]]  # a's latest in a's first place in the line
    assert upper.superseded == 2
    assert await upper("a5", key="a") == "A5"  # nothing waits under the key any more: it runs as usual


async def test_the_relay_sends_waiting_messages_in_one_request_and_each_gets_its_own_ranking(tmp_path: Path) -> None:
    with running_action_server(tmp_path) as (settings, _):
        source = HttpSuggestSource(actions_base_url(settings.actions_url))
        requests: list[list[str]] = []
        send = source._rank_together

        async def counted(asks: list[tuple[str, int]]) -> list[Ranking | None]:  # the real request, recorded
            requests.append([text for text, _ in asks])
            return await send(asks)

        source._batched = Coalescer(counted, suggest_wire.MAX_BATCH)  # the source's own batching, with a spy
        try:
            texts = ["how can I reset my password?", "where do I find my invoice?", "can I change my plan?"] * 2
            together = await asyncio.gather(*(source.rank(text, 2) for text in texts))
            assert requests == [texts]  # asked in the same turn of the relay's loop: one request
            alone = [await source.rank(text, 2) for text in texts[:3]]
            assert requests[1:] == [[text] for text in texts[:3]]  # nothing out: each at once, alone
            for ranking, again in zip(together, alone * 2, strict=True):
                assert ranking is not None and again is not None and ranking.kb_version == again.kb_version
                assert len(ranking.articles) == 2 and ranking.articles == again.articles
            assert len({r.articles[0].article_id for r in alone if r is not None}) == 3  # three different questions

            # Two messages of one chat waiting together: only the newer is ranked, the older gets nothing.
            del requests[:]
            older, other, newer = await asyncio.gather(
                source.rank(texts[0], 2, chat=7), source.rank(texts[1], 2, chat=8), source.rank(texts[2], 2, chat=7)
            )
            assert requests == [[texts[2], texts[1]]]  # the newer in the older's place
            assert older is None and other is not None and newer is not None and alone[2] is not None
            assert newer.articles == alone[2].articles

            async with aiohttp.ClientSession() as http:
                url = actions_base_url(settings.actions_url) + suggest_wire.ROUTE
                for bad in ({}, {"requests": []}, {"requests": [{"text": ""}]}, {"requests": [{"text": "x"}] * 33}):
                    async with http.post(url, json=bad) as answer:
                        assert answer.status == 400, bad
        finally:
            await source.close()
