"""The copilot's ranking contract between the relay and the action server: what the relay posts to
``/copilot/suggest`` (handoff/copilot.py HttpSuggestSource) and what the action server answers (actions/suggest.py),
one pydantic model each, read and written by both ends so they cannot drift apart."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

ROUTE = "/copilot/suggest"
MAX_K = 10
MAX_TEXT = 4000  # the relay cuts a longer message to this before asking
MAX_BATCH = 32  # texts per request (and per encoder pass); a longer line waits for the next one


class SuggestRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    text: str = Field(min_length=1, max_length=MAX_TEXT)
    k: int = Field(default=3, ge=1, le=MAX_K)


class SuggestBatch(BaseModel):
    """What the relay posts: the messages it needs rankings for, several when they arrived together."""

    model_config = ConfigDict(extra="ignore")

    requests: list[SuggestRequest] = Field(min_length=1, max_length=MAX_BATCH)


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


class SuggestBatchResponse(BaseModel):
    rankings: list[SuggestResponse]  # one per request, in order
