"""The copilot's suggestions endpoint on the action server: the relay asks here for the KB articles that fit a
customer's message in the human phase (handoff/copilot.py).

Why here and not in the relay: this process holds the live retriever the bot answers with (actions/kb_service.py,
re-indexed within a second of a publish, later swapped for the fine-tuned encoder), so a suggestion is ranked by
exactly the model and KB revision the bot would use, and a publish reaches suggestions the moment it reaches the
bot. A second copy of the index in each relay would cost its memory and its own rebuilds, and drift from the bot's.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from actions.kb_service import KBService, live_kb

ROUTE = "/copilot/suggest"
MAX_K = 10


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


async def suggest(service: KBService, ask: SuggestRequest) -> SuggestResponse:
    live = await service.current()
    ranked = live.retriever.rank(ask.text, ask.k) if live.kb.articles else []
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

    async def handler(request: Request) -> HTTPResponse:
        try:
            ask = SuggestRequest.model_validate(request.json or {})
        except (ValidationError, ValueError) as exc:
            return response.json({"error": str(exc)}, status=400)
        return response.json((await suggest(service, ask)).model_dump())

    app.add_route(handler, ROUTE, methods=["POST"], name="copilot_suggest")
