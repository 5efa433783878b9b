"""The copilot's suggestions endpoint on the action server: the relay asks here for the KB articles that fit a
customer's message in the human phase (handoff/copilot.py).

Why here and not in the relay: this process holds the live retriever the bot answers with (actions/kb_service.py,
re-indexed within a second of a publish, later swapped for the fine-tuned encoder), so a suggestion is ranked by
exactly the model and KB revision the bot would use, and a publish reaches suggestions the moment it reaches the
bot. A second copy of the index in each relay would cost its memory and its own rebuilds, and drift from the bot's.
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from actions.kb_service import KBService, LiveKB, live_kb
from knowledge.retrieval import Scored

ROUTE = "/copilot/suggest"
MAX_K = 10
MAX_BATCH = 32  # texts per encoder pass; a longer queue waits for the next one


class SuggestRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    text: str = Field(min_length=1, max_length=4000)
    k: int = Field(default=3, ge=1, le=MAX_K)


class RankedArticle(BaseModel):
    article_id: str
    title: str
    answer: str
    team: str
    confidence: float


class SuggestResponse(BaseModel):
    kb_version: str
    mode: str  # the retriever's mode: tuned | embeddings | tfidf
    answer_threshold: float  # the bot answers at or above this confidence
    choices_threshold: float
    articles: list[RankedArticle]


class RankBatcher:
    """Ranks the messages that arrive together in one encoder pass: a batch costs far less per text than one text
    at a time (measured on this machine: see docs/benchmarks.md, copilot), and in the human phase every customer
    message asks for suggestions. Nothing waits for a batch to fill: a request that finds the encoder idle runs at
    once, and those that arrive meanwhile go together in the next pass. The pass runs in a worker thread, so the
    action server keeps serving Rasa's actions while it encodes."""

    def __init__(self, service: KBService, max_batch: int = MAX_BATCH) -> None:
        self._service = service
        self._max_batch = max_batch
        self._waiting: list[tuple[str, int, asyncio.Future[tuple[LiveKB, list[Scored]]]]] = []
        self._running = False

    async def rank(self, text: str, k: int) -> tuple[LiveKB, list[Scored]]:
        future: asyncio.Future[tuple[LiveKB, list[Scored]]] = asyncio.get_running_loop().create_future()
        self._waiting.append((text, k, future))
        if not self._running:
            self._running = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[: self._max_batch], self._waiting[self._max_batch :]
                try:
                    live = await self._service.current()
                    texts = [text for text, _, _ in batch]
                    ranked = (
                        await asyncio.to_thread(live.retriever.rank_many, texts, max(k for _, k, _ in batch))
                        if live.kb.articles
                        else [[] for _ in batch]
                    )
                except Exception as error:  # every request of this batch gets the failure, the next batch runs
                    for _, _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    continue
                for (_, k, future), found in zip(batch, ranked, strict=True):
                    if not future.done():
                        future.set_result((live, found[:k]))
        finally:
            self._running = False


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


def register(app: Sanic, service: KBService = live_kb) -> None:
    """Add the route to the action server's Sanic app (``warmline actions``)."""

    batcher = RankBatcher(service)

    async def handler(request: Request) -> HTTPResponse:
        try:
            ask = SuggestRequest.model_validate(request.json or {})
        except (ValidationError, ValueError) as exc:
            return response.json({"error": str(exc)}, status=400)
        return response.json((await suggest(batcher, ask)).model_dump())

    app.add_route(handler, ROUTE, methods=["POST"], name="copilot_suggest")
