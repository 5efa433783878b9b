"""The copilot's suggestions endpoint on the action server: the relay asks here for the KB articles that fit a
customer's message in the human phase (handoff/copilot.py).

Why here and not in the relay: this process holds the live retriever the bot answers with (actions/kb_service.py,
re-indexed within a second of a publish, later swapped for the fine-tuned encoder), so a suggestion is ranked by
exactly the model and KB revision the bot would use, and a publish reaches suggestions the moment it reaches the
bot. A second copy of the index in each relay would cost its memory and its own rebuilds, and drift from the bot's.
The request and the answer are knowledge/suggest_wire.py's, shared with the relay.
"""

from __future__ import annotations

import asyncio

from pydantic import ValidationError
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from actions.kb_service import TUNE_NICENESS, KBService, LiveKB, live_kb
from common.background import background_thread
from common.batching import Coalescer
from knowledge.retrieval import Scored
from knowledge.suggest_wire import (
    MAX_BATCH,
    ROUTE,
    RankedArticle,
    SuggestBatch,
    SuggestBatchResponse,
    SuggestRequest,
    SuggestResponse,
)

# Between the chat's own work (0) and the background fine-tune (TUNE_NICENESS): an agent's suggestions matter more
# than a better encoder a minute sooner.
COPILOT_NICENESS = TUNE_NICENESS // 2


class RankBatcher:
    """Ranks the messages that arrive together in one encoder pass (common/batching.py): a batch costs less per
    text than one text at a time, and in the human phase every customer message asks for suggestions. The pass
    runs in a worker thread of its own at a lower CPU priority (common/background.py): the action server keeps
    serving Rasa's actions while it encodes, and where it shares cores with the relay and Rasa (``make run``, a
    small host) the bot's answers and the chat's messages go first; a suggestion can wait, and one still waiting
    when its chat's next message comes is dropped (common/batching.py)."""

    def __init__(self, service: KBService, max_batch: int = MAX_BATCH) -> None:
        self._service = service
        self._together = Coalescer(self._rank_together, max_batch)
        self._encoder = background_thread("copilot-rank", COPILOT_NICENESS)

    async def rank(self, text: str, k: int) -> tuple[LiveKB, list[Scored]]:
        return await self._together((text, k))

    async def _rank_together(self, asks: list[tuple[str, int]]) -> list[tuple[LiveKB, list[Scored]]]:
        live = await self._service.current()
        if not live.kb.articles:
            return [(live, []) for _ in asks]
        texts = [text for text, _ in asks]
        ranked = await asyncio.get_running_loop().run_in_executor(
            self._encoder, live.retriever.rank_many, texts, max(k for _, k in asks)
        )
        return [(live, found[:k]) for (_, k), found in zip(asks, ranked, strict=True)]


async def suggest(batcher: RankBatcher, ask: SuggestRequest) -> SuggestResponse:
    live, ranked = await batcher.rank(ask.text, ask.k)
    found = []
    for scored in ranked:
        article = live.kb.by_id(scored.article_id)
        if article is not None:
            found.append(
                RankedArticle(
                    article_id=article.id, title=article.title, answer=article.answer, team=article.team,
                    confidence=round(scored.score, 4),
                )
            )  # fmt: skip
    thresholds = live.retriever.default_thresholds
    return SuggestResponse(
        kb_version=live.version, mode=live.retriever.mode, answer_threshold=thresholds.answer,
        choices_threshold=thresholds.choices, articles=found,
    )  # fmt: skip


async def suggest_all(batcher: RankBatcher, batch: SuggestBatch) -> SuggestBatchResponse:
    """Every request of the batch, in one encoder pass with whatever else is waiting."""
    return SuggestBatchResponse(rankings=list(await asyncio.gather(*(suggest(batcher, r) for r in batch.requests))))


def register(app: Sanic, service: KBService = live_kb) -> None:
    """Add the route to the action server's Sanic app (``warmline actions``)."""

    batcher = RankBatcher(service)

    async def handler(request: Request) -> HTTPResponse:
        try:
            batch = SuggestBatch.model_validate(request.json or {})
        except (ValidationError, ValueError) as exc:
            return response.json({"error": str(exc)}, status=400)
        return response.json((await suggest_all(batcher, batch)).model_dump())

    app.add_route(handler, ROUTE, methods=["POST"], name="copilot_suggest")
