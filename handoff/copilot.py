"""The bot as the agent's silent copilot: KB and canned-response suggestions for the seated agent in the human
phase, the top ones again with a handoff (accept, transfer), metrics of what agents used, and "save to the KB".

Only what an agent looks at is ranked: the console asks (``suggest``) for each customer message of the chat on its
screen as it arrives, and for the last unanswered question when a chat opens; with accept or a transfer the
suggestions follow the card unasked. The customer's message is relayed first and never waits for any of it.
Articles are ranked by the action server's live retriever over HTTP (actions/suggest.py): the same model and KB
revision the bot answers with, so a publish reaches suggestions as fast as it reaches the bot. Suggestions go to the
seated agent only: no event of the customer namespace carries one, and Rasa, paused in the human phase, is not asked
anything new.

Top: the policy as pure functions (what to show at which confidence, no duplicates, nothing below a floor). Then
the I/O: the ranking source, the suggestion sets (stored: they stay on their message after a reload and count as
"shown"), and the agent's events (insert, sent, reload, save to the KB).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import secrets
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, Protocol

import aiohttp
import socketio
from cachetools import TTLCache
from pydantic import ValidationError
from sqlalchemy import String, Table, bindparam, case, cast, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.batching import Coalescer, Superseded
from common.clock import utcnow
from common.db import HotPathWriter, WriteConnection, reading
from common.driver import hot
from common.errors import InvalidPayload, NotYourTicket
from handoff import canned, events, teams, telemetry
from handoff.conversation import agent_room
from handoff.guard import Gate, Handler, parse, register
from handoff.models import (
    Agent,
    Conversation,
    CopilotItem,
    CopilotSaved,
    CopilotSuggestion,
    CopilotUse,
    Message,
    Ticket,
)
from handoff.outbox import Outbox
from handoff.store import CONVERSATIONS, MESSAGES
from handoff.tickets import TICKETS
from knowledge import store as kb_store
from knowledge import suggest_wire
from knowledge.articles import SLUG_RE
from knowledge.models import KBArticle, UnansweredQuestion

log = logging.getLogger(__name__)

NS = events.AGENT_NAMESPACE

# ================================================================================================================
# The policy (pure)
# ================================================================================================================

FLOOR = 0.15  # below this calibrated confidence an article is noise to a person reading fast: never shown
MEDIUM = 0.4  # "medium" from here up to the bot's own answer threshold ("high": the bot would have answered)
RUNNER_UP_RATIO = 0.5  # next to a high top article, a runner-up under half its score only distracts
MAX_ARTICLES = 3
# How long a relay process reuses the canned responses and an agent's name and teams for suggestions: an edit made
# through another process shows in suggestions within this time (this process's own edits at once).
CONTEXT_TTL_S = 10.0
SET_REUSE_S = 60.0  # a ranking answers every ask for its message this long (its set is stored well before)
ALL_CANNED = "all"
MAX_CANNED = 2
CANNED_MIN_OVERLAP = 2.0  # shared words (title ones count double): one common word is chance
EXCERPT_CHARS = 160
WORD = re.compile(r"[a-z0-9]+")
# Words that say nothing about what a message is about; a canned response is matched on the rest.
STOPWORDS = frozenset(
    "a an and are as at be but by can could do does for from have how i if in is it me my no not of on or our so "
    "that the this to was we what when where which who why will with you your hi hello hey please thanks thank ok okay yes yeah sure great cool bye".split()
)


class Chat(NamedTuple):
    """The chat a suggestion is for, as rendering needs it (the ticket's team, the customer's record)."""

    team: str | None
    customer: dict[str, Any]


@dataclass(frozen=True)
class Ranked:
    """An article as the live retriever ranked it for a message."""

    article_id: str
    title: str
    answer: str
    team: str | None
    confidence: float


@dataclass(frozen=True)
class Ranking:
    kb_version: str | None
    answer_threshold: float
    articles: tuple[Ranked, ...]


Level = Literal["high", "medium", "low"]


def level(confidence: float, answer_threshold: float) -> Level:
    if confidence >= answer_threshold:
        return "high"
    return "medium" if confidence >= MEDIUM else "low"


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def pick_articles(
    ranked: Iterable[Ranked], answer_threshold: float, floor: float = FLOOR, limit: int = MAX_ARTICLES
) -> list[Ranked]:
    """The articles to show, best first: none below ``floor``; no article twice, nor two with the same answer;
    next to a high-confidence top article only runners-up of at least ``RUNNER_UP_RATIO`` of its score."""
    best_first = sorted(ranked, key=lambda r: -r.confidence)
    picked: list[Ranked] = []
    seen_ids: set[str] = set()
    seen_answers: set[str] = set()
    for r in best_first:
        if r.confidence < floor or r.article_id in seen_ids or _norm(r.answer) in seen_answers:
            continue
        top = picked[0] if picked else None
        if top is not None and top.confidence >= answer_threshold and r.confidence < RUNNER_UP_RATIO * top.confidence:
            break  # sorted: every later one is weaker still
        picked.append(r)
        seen_ids.add(r.article_id)
        seen_answers.add(_norm(r.answer))
        if len(picked) == limit:
            break
    return picked


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The answer's first words, whole words only, with an ellipsis when cut."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[: limit + 1].rsplit(" ", 1)[0] if " " in flat[:limit] else flat[:limit]
    return cut.rstrip(" ,.;:") + "…"


def content_words(text: str) -> set[str]:
    return {w for w in WORD.findall(text.lower()) if len(w) > 1 and w not in STOPWORDS}


@functools.lru_cache(maxsize=4096)
def _canned_words(c: canned.Canned) -> tuple[frozenset[str], frozenset[str]]:
    """A response's content words (title with shortcut, body): the same for every message, so worked out once (for
    every response at every customer message they were most of the copilot's own CPU in the relay)."""
    title = content_words(c.title + " " + c.shortcut.replace("-", " ").replace("_", " "))
    return frozenset(title), frozenset(content_words(c.body))


def match_canned(
    message: str,
    responses: Iterable[canned.Canned],
    working: set[str],
    exclude_texts: Iterable[str] = (),
    limit: int = MAX_CANNED,
) -> list[canned.Canned]:
    """Canned responses (of the agent's teams, or shared) that share enough content words with the message, best
    first; none whose text duplicates a suggested article's answer (``exclude_texts``) or another response."""
    words = content_words(message)
    if not words:
        return []
    taken = {_norm(t) for t in exclude_texts}
    scored: list[tuple[float, canned.Canned]] = []
    for c in responses:
        if c.team is not None and c.team not in working:
            continue
        title, body = _canned_words(c)
        in_title = words & title
        score = 2.0 * len(in_title) + len((words - in_title) & body)
        if score >= CANNED_MIN_OVERLAP:
            scored.append((score, c))
    scored.sort(key=lambda pair: (-pair[0], pair[1].shortcut))
    out: list[canned.Canned] = []
    for _, c in scored:
        if _norm(c.body) in taken:
            continue
        taken.add(_norm(c.body))
        out.append(c)
        if len(out) == limit:
            break
    return out


def worth_suggesting(text: str) -> bool:
    """A quick-reply payload ("/human") or a message with no content word ("ok", "thanks!") gets nothing."""
    return not text.strip().startswith("/") and bool(content_words(text))


# What the bot read as asking for a person, a greeting or a thank-you is not a question the KB could answer.
NOT_QUESTIONS = frozenset({"human", "greet", "goodbye", "thank", "feedback_yes", "feedback_no"})


@dataclass(frozen=True)
class Said:
    id: int
    sender: str
    text: str
    intent: str | None = None  # the bot's reading, for messages of the bot phase


def said_of(message_id: int, sender: str, text: str, parse: Mapping[str, Any] | None) -> Said:
    # As stored (bot/channel.py summarize_parse): {"intent": "<name>", ...}; Rasa's own shape has {"name": ...}.
    intent = (parse or {}).get("intent")
    name = intent.get("name") if isinstance(intent, Mapping) else intent
    return Said(message_id, sender, text, name if isinstance(name, str) else None)


def is_question(m: Said) -> bool:
    return m.sender == "customer" and worth_suggesting(m.text) and m.intent not in NOT_QUESTIONS


def last_unanswered(messages: Sequence[Said]) -> Said | None:
    """The customer's last question no agent has answered yet: their last message worth suggesting for, after
    the last agent message (None: the agent spoke last, or the customer asked nothing)."""
    for m in reversed(messages):
        if m.sender == "agent":
            return None
        if is_question(m):
            return m
    return None


def question_before(messages: Sequence[Said], answer_id: int) -> Said | None:
    """The customer's question an agent's answer replied to: their last message worth it before the answer."""
    before = [m for m in messages if m.id < answer_id]
    return next((m for m in reversed(before) if is_question(m)), None)


def outcome(inserted: str, sent: str) -> Literal["unchanged", "edited"]:
    """Sent as inserted (spacing aside), or edited first."""
    return "unchanged" if _norm(inserted) == _norm(sent) else "edited"


def suggestions(
    ranking: Ranking,
    responses: Sequence[canned.Canned],
    working: set[str],
    question: str,
    context: Mapping[str, Mapping[str, object]],
) -> tuple[list[events.SuggestedArticle], list[events.SuggestedCanned]]:
    """What to show for ``question``: the picked articles and matching canned responses, rendered for the ticket."""
    articles = [
        events.SuggestedArticle(
            article_id=r.article_id,
            title=r.title,
            excerpt=excerpt(canned.render(r.answer, context)),
            text=canned.render(r.answer, context),
            confidence=round(r.confidence, 3),
            level=level(r.confidence, ranking.answer_threshold),
            team=r.team,
        )  # fmt: skip
        for r in pick_articles(ranking.articles, ranking.answer_threshold)
    ]
    matched = match_canned(question, responses, working, exclude_texts=[a.text for a in articles])
    canned_items = [
        events.SuggestedCanned(canned_id=c.id, shortcut=c.shortcut, title=c.title, text=canned.render(c.body, context))
        for c in matched
    ]
    return articles, canned_items


def draft_id(question: str, taken: set[str]) -> str:
    """A slug for a draft article made from a question, not yet taken."""
    words = [w for w in WORD.findall(question.lower()) if w not in STOPWORDS][:6] or ["agent", "answer"]
    base = "-".join(words)[:56].strip("-") or "agent-answer"
    candidate, n = base, 2
    while candidate in taken or not SLUG_RE.match(candidate):
        candidate, n = f"{base}-{n}", n + 1
    return candidate


def inbox_reason(agent_name: str, ticket_id: int) -> str:
    """The inbox entry's reason, as the editors' inbox shows it (the column holds 32 characters)."""
    suffix = f" · ticket #{ticket_id}"
    return f"agent {agent_name[: 32 - 6 - len(suffix)]}{suffix}"


# ================================================================================================================
# Where rankings come from
# ================================================================================================================


class SuggestSource(Protocol):
    async def rank(self, text: str, k: int, chat: int | None = None) -> Ranking | None:
        """The top k articles for text; None when there is none to give (the source is down, or a newer message of
        the same chat, ``chat`` a ticket id, replaced this one while it waited)."""
        ...


class HttpSuggestSource:
    """The action server's live retriever (actions/suggest.py), over one pooled HTTP session. The messages that
    need rankings while a request is out go together in the next one (common/batching.py): under load one round
    trip, and one request's handling on the action server, serve several chats. A message still waiting when its
    chat's next one arrives is not ranked at all (``Superseded``): the agent reads the latest, and when the action
    server falls behind, what waits stays one message per chat instead of growing with the traffic."""

    def __init__(self, actions_base_url: str, timeout_s: float = 5.0) -> None:
        self._url = actions_base_url.rstrip("/") + suggest_wire.ROUTE
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._http: aiohttp.ClientSession | None = None
        self._batched = Coalescer(self._rank_together, suggest_wire.MAX_BATCH)

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(
            timeout=self._timeout, connector=aiohttp.TCPConnector(limit=50, keepalive_timeout=60)
        )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def rank(self, text: str, k: int, chat: int | None = None) -> Ranking | None:
        try:
            return await self._batched((text, k), key=chat)
        except Superseded:
            telemetry.COPILOT_SUPERSEDED.inc()
            return None

    async def _rank_together(self, asks: list[tuple[str, int]]) -> list[Ranking | None]:
        if self._http is None:
            await self.start()
        assert self._http is not None
        body = {"requests": [{"text": text[: suggest_wire.MAX_TEXT], "k": k} for text, k in asks]}
        try:
            async with self._http.post(self._url, json=body) as answer:
                if answer.status != 200:
                    log.warning("copilot: the action server answered %s", answer.status)
                    return [None] * len(asks)
                rankings = suggest_wire.SuggestBatchResponse.model_validate(await answer.json()).rankings
        except (TimeoutError, aiohttp.ClientError, ValueError, ValidationError) as exc:
            log.warning("copilot: no suggestions (%s)", exc.__class__.__name__)
            return [None] * len(asks)  # no suggestions this time; the chats themselves are unaffected
        if len(rankings) != len(asks):
            log.warning("copilot: %d rankings for %d messages", len(rankings), len(asks))
            return [None] * len(asks)
        return [ranking_of(wire) for wire in rankings]


def ranking_of(wire: suggest_wire.SuggestResponse) -> Ranking:
    """One of the action server's rankings, as the policy reads it."""
    return Ranking(
        wire.kb_version,
        wire.answer_threshold,
        tuple(Ranked(a.article_id, a.title, a.answer, a.team, a.confidence) for a in wire.articles),
    )


def new_suggestion_id() -> int:
    """A set's id, made before it is stored (so it can be shown first): random, 52 bits (exact in JavaScript)."""
    return secrets.randbits(52) or 1


SUGGESTIONS: Table = CopilotSuggestion.__table__  # type: ignore[assignment]
ITEMS: Table = CopilotItem.__table__  # type: ignore[assignment]
_INSERT_SET, _INSERT_ITEMS = hot(insert(SUGGESTIONS)), hot(insert(ITEMS))  # one set per human-phase message


# An ask's reads, on the tables and declared hot: built and run through SQLAlchemy per ask they were a third of the
# relay's CPU with every chat on screen (its compile-cache keys alone about a tenth).
_SEAT = hot(
    select(TICKETS.c.agent_id, TICKETS.c.status, TICKETS.c.team, TICKETS.c.conversation_id, CONVERSATIONS.c.customer)
    .join(CONVERSATIONS, CONVERSATIONS.c.id == TICKETS.c.conversation_id)
    .where(TICKETS.c.id == bindparam("ticket_id"))
)
_SAID = select(MESSAGES.c.id, MESSAGES.c.sender, MESSAGES.c.text, MESSAGES.c.parse).where(
    MESSAGES.c.conversation_id == bindparam("conversation_id")
)
_SAID_ALL = hot(_SAID.order_by(MESSAGES.c.id))
_SAID_ONE = hot(_SAID.where(MESSAGES.c.id == bindparam("message_id")))
_STORED_SET = hot(  # by the ticket's index: a chat has a few sets, the table one a message ranked
    select(SUGGESTIONS.c.payload)
    .where(
        SUGGESTIONS.c.ticket_id == bindparam("ticket_id"),
        SUGGESTIONS.c.message_id == bindparam("message_id"),
        SUGGESTIONS.c.agent_id == bindparam("agent_id"),
    )
    .order_by(SUGGESTIONS.c.id.desc())
    .limit(1)
)


def _on_screen_in(
    s: WriteConnection, ticket_id: int, agent_id: int, message_id: int | None
) -> tuple[Said | None, Chat, dict[str, Any] | None]:
    """What an ask for the chat on screen needs: the message to rank (None: nothing to suggest for), the chat, and
    the set already made for it for this agent, if any. Refused unless the agent is seated in the chat."""
    seat = s.execute(_SEAT, {"ticket_id": ticket_id}).first()
    if seat is None or seat.agent_id != agent_id or seat.status != "assigned":
        raise NotYourTicket()
    chat = Chat(seat.team, dict(seat.customer or {}))
    if message_id is None:
        rows = s.execute(_SAID_ALL, {"conversation_id": seat.conversation_id}).all()
        asked = last_unanswered([said_of(r.id, r.sender, r.text, r.parse) for r in rows])
    else:
        row = s.execute(_SAID_ONE, {"conversation_id": seat.conversation_id, "message_id": message_id}).first()
        if row is None or row.sender != "customer":
            raise InvalidPayload("message_id: not a customer message of this chat")
        asked = said_of(row.id, row.sender, row.text, row.parse)
        asked = asked if worth_suggesting(asked.text) else None
    if asked is None:
        return None, chat, None
    found = s.execute(_STORED_SET, {"ticket_id": ticket_id, "message_id": asked.id, "agent_id": agent_id}).first()
    return asked, chat, found[0] if found is not None else None


def actions_base_url(actions_webhook_url: str) -> str:
    """Settings give the action server's webhook URL; the copilot's route lives beside it."""
    return actions_webhook_url.removesuffix("/webhook")


# ================================================================================================================
# The I/O: suggestion sets, handoffs, the agent's events
# ================================================================================================================


class Copilot:
    def __init__(
        self,
        sio: socketio.AsyncServer,
        outbox: Outbox,
        sessions: async_sessionmaker[AsyncSession],
        writer: HotPathWriter,
        source: SuggestSource,
        gate: Gate | None = None,
        enabled: bool = True,
    ) -> None:
        self.enabled = enabled  # WARMLINE_COPILOT: off, no suggestions are made (the agent's events still answer)
        self.gate = gate  # the agent namespace's rate limit (handoff/guard.py)
        self.sio = sio
        self.out = outbox
        self.sessions = sessions
        self.writer = writer
        self.source = source
        self._tasks: set[asyncio.Task[Any]] = set()
        self._agents: TTLCache[int, tuple[str, frozenset[str]]] = TTLCache(maxsize=10_000, ttl=CONTEXT_TTL_S)
        self._canned: TTLCache[str, list[canned.Canned]] = TTLCache(maxsize=1, ttl=CONTEXT_TTL_S)
        # (agent, message) -> its ranking, while it runs and until its set is surely stored (_once)
        self._made: TTLCache[tuple[int, int], asyncio.Task[events.SuggestionsOut | None]] = TTLCache(
            maxsize=10_000, ttl=SET_REUSE_S
        )

    def register(self) -> None:
        handlers: list[tuple[events.Event[Any], Handler]] = [
            (events.SUGGESTION_USED, self.suggestion_used),
            (events.SUGGESTION_SENT, self.suggestion_sent),
            (events.SUGGEST, self.suggest_for),
            (events.SUGGESTIONS_OF, self.suggestions_of),
            (events.SAVE_TO_KB, self.save_to_kb),
        ]
        register(self.sio, self.out, handlers, self.gate)

    # --- producing suggestions -------------------------------------------------------------------------------

    def _background(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("copilot task failed", exc_info=task.exception())

    async def settled(self) -> None:
        """Wait for the suggestions in flight (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def after_handoff(self, ticket_id: int, to_agent_id: int) -> None:
        """An agent accepted a chat or got it by a transfer: the suggestions for the customer's last unanswered
        question follow the card as a ``suggestions`` event (context handoff). Not in accept's acknowledgement:
        ranking takes tens of milliseconds, which accept (p99 < 50 ms, docs/benchmarks.md) should not wait for."""
        if self.enabled:
            self._background(self._handoff_and_send(ticket_id, to_agent_id))

    async def _handoff_and_send(self, ticket_id: int, agent_id: int) -> None:
        out = await self.for_handoff(ticket_id, agent_id)
        if out is not None:
            await self.out.emit(events.SUGGESTIONS, out, to=agent_room(agent_id))

    async def for_handoff(self, ticket_id: int, agent_id: int) -> events.SuggestionsOut | None:
        """The suggestions for the customer's last unanswered question, for the agent who takes the chat now (a set
        of its own, even if this agent had one for that message before). Nothing if the chat is not theirs by now."""
        try:
            asked, chat, _ = await self.writer.write(lambda s: _on_screen_in(s, ticket_id, agent_id, None))
        except NotYourTicket:
            return None
        if asked is None:
            return None
        return await self._once(
            agent_id, asked.id, self.suggest(ticket_id, agent_id, asked.id, asked.text, "handoff", chat)
        )

    async def for_screen(self, ticket_id: int, agent_id: int, message_id: int | None) -> events.SuggestionsOut | None:
        """The suggestions for a customer message of a chat the agent has on screen (``message_id``), or for its
        last unanswered question (None: the chat was just opened). Only what an agent looks at is ranked: an agent
        with several chats open reads one at a time, and a ranking costs the action server milliseconds of CPU
        (docs/benchmarks.md, scale-out c). A message already ranked for this agent gets its stored set."""
        # On the hot-path writer: on SQLite its reads run on the loop's own connection (through aiosqlite, each
        # of these statements was several thread hops: an ask cost the relay 7-8 ms of CPU).
        asked, chat, stored = await self.writer.write(lambda s: _on_screen_in(s, ticket_id, agent_id, message_id))
        if asked is None:
            return None
        if stored is not None:
            return events.SuggestionsOut.model_validate(stored)
        return await self._once(
            agent_id, asked.id, self.suggest(ticket_id, agent_id, asked.id, asked.text, "message", chat)
        )

    async def _once(
        self, agent_id: int, message_id: int, making: Coroutine[Any, Any, events.SuggestionsOut | None]
    ) -> events.SuggestionsOut | None:
        """One ranking per message and agent in this process: a second ask (another tab, the console opening the
        chat an accept is already ranking for) waits for the first, also before its set is stored."""
        key = (agent_id, message_id)
        task = self._made.get(key)
        if task is None or (task.done() and (task.cancelled() or task.exception() or task.result() is None)):
            task = self._made[key] = asyncio.get_running_loop().create_task(making)
            self._tasks.add(task)
            task.add_done_callback(self._done)
        else:
            making.close()  # not needed: the first ask's ranking answers this one
        return await asyncio.shield(task)

    async def suggest(
        self,
        ticket_id: int,
        agent_id: int,
        message_id: int | None,
        question: str,
        context: str,
        chat: Chat | None = None,
    ) -> events.SuggestionsOut | None:
        """Rank, pick and render one set; None when the action server could not be asked or the chat's next message
        replaced this one before it was (HttpSuggestSource). The database reads run while the action server ranks,
        and the set is stored after it is returned (the agent sees it sooner; its id is made here), so neither
        waits on the other nor on the write queue."""
        ranking, known = await asyncio.gather(
            self.source.rank(question, MAX_ARTICLES + 2, chat=ticket_id),  # spares for the duplicates the policy drops
            self._context(ticket_id, agent_id, chat),
        )
        if ranking is None or known is None:
            return None
        render_context, responses, working = known
        articles, canned_items = suggestions(ranking, responses, working, question, render_context)
        out = events.SuggestionsOut(
            suggestion_id=new_suggestion_id(), ticket_id=ticket_id, message_id=message_id, question=question,
            context="handoff" if context == "handoff" else "message", kb_version=ranking.kb_version,
            articles=articles, canned=canned_items,
        )  # fmt: skip
        self._background(self._store(out, agent_id))
        return out

    async def _context(
        self, ticket_id: int, agent_id: int, chat: Chat | None = None
    ) -> tuple[dict[str, dict[str, object]], list[canned.Canned], set[str]] | None:
        """What rendering needs (agent, ticket, customer), the canned responses and the agent's teams: the chat as
        given by the caller or in one read; the canned responses and the agent (name, teams) from a short-lived
        cache, as they change rarely and every human-phase message needs them (issue 15: they were most of the
        relay's CPU per message)."""
        agent = self._agents.get(agent_id)
        responses = self._canned.get(ALL_CANNED)
        if chat is None or agent is None or responses is None:
            async with reading(self.sessions) as s:
                if chat is None:
                    row = (
                        await s.execute(
                            select(Ticket.team, Conversation.customer)
                            .join(Conversation, Conversation.id == Ticket.conversation_id)
                            .where(Ticket.id == ticket_id)
                        )
                    ).first()
                    if row is None:
                        return None
                    chat = Chat(row.team, dict(row.customer or {}))
                if agent is None:
                    name = await s.scalar(select(Agent.name).where(Agent.id == agent_id))
                    agent = self._agents[agent_id] = (name or "", frozenset(await teams.working_teams(s, agent_id)))
                if responses is None:
                    responses = self._canned[ALL_CANNED] = await teams.canned_responses(s)
        render_context: dict[str, dict[str, object]] = {
            "agent": {"name": agent[0]},
            "ticket": {"id": ticket_id, "team": chat.team},
            "customer": dict(chat.customer),
        }
        return render_context, list(responses), set(agent[1])

    def forget_context(self) -> None:
        """An administrator changed canned responses, an agent or teams in this process: read them afresh now
        (other relay processes see the change within CONTEXT_TTL_S)."""
        self._agents.clear()
        self._canned.clear()

    async def _store(self, out: events.SuggestionsOut, agent_id: int) -> None:
        """The set as shown (re-sent after a reload) and one row per item ("shown", per article and agent). One set
        per human-phase message: through the hot-path writer, so it never holds the write queue across awaits."""

        shown = {
            "id": out.suggestion_id, "ticket_id": out.ticket_id, "message_id": out.message_id, "agent_id": agent_id,
            "context": out.context, "kb_version": out.kb_version, "payload": out.model_dump(mode="json"),
            "created_at": utcnow(),  # given, not the column's default: a hot statement has every value given
        }  # fmt: skip
        items = [
            {"suggestion_id": out.suggestion_id, "kind": "article", "ref": a.article_id, "rank": rank,
             "confidence": a.confidence}
            for rank, a in enumerate(out.articles)
        ] + [
            {"suggestion_id": out.suggestion_id, "kind": "canned", "ref": str(c.canned_id), "rank": rank,
             "confidence": None}
            for rank, c in enumerate(out.canned)
        ]  # fmt: skip

        def store_it(s: WriteConnection) -> None:
            # On the tables, not the mapped classes: the ORM's bulk-insert machinery was most of this write's cost.
            s.execute(_INSERT_SET, shown)  # the set before its items (their foreign key)
            if items:
                s.execute(_INSERT_ITEMS, items)

        await self.writer.write(store_it)

    # --- the agent's events ----------------------------------------------------------------------------------

    async def _me(self, sid: str) -> tuple[int, str]:
        session = await self.sio.get_session(sid, namespace=NS)
        return int(session["agent_id"]), str(session["name"])

    @staticmethod
    async def _mine(s: AsyncSession, ticket_id: int, agent_id: int, seated: bool = True) -> Ticket:
        ticket = await s.get(Ticket, ticket_id)
        if ticket is None or ticket.agent_id != agent_id or (seated and ticket.status != "assigned"):
            raise NotYourTicket()
        return ticket

    async def suggestion_used(self, sid: str, data: Any) -> dict[str, Any]:
        """The agent inserted one suggestion of a set shown to them: counted as inserted."""
        req = parse(events.SuggestionUsed, data)
        agent_id, _ = await self._me(sid)
        async with self.sessions() as s, s.begin():
            await self._mine(s, req.ticket_id, agent_id)
            shown = await s.get(CopilotSuggestion, req.suggestion_id)
            if shown is None or shown.ticket_id != req.ticket_id:
                raise InvalidPayload("suggestion_id: not a suggestion of this chat")
            item = (
                await s.execute(
                    select(CopilotItem).where(
                        CopilotItem.suggestion_id == shown.id, CopilotItem.kind == req.kind, CopilotItem.ref == req.ref
                    )
                )
            ).scalar_one_or_none()
            if item is None:
                raise InvalidPayload("ref: not in this suggestion")
            key = "articles" if req.kind == "article" else "canned"
            ref_key = "article_id" if req.kind == "article" else "canned_id"
            text = next(str(x["text"]) for x in shown.payload.get(key, []) if str(x[ref_key]) == req.ref)
            use = CopilotUse(item_id=item.id, agent_id=agent_id, inserted_text=text)
            s.add(use)
            await s.flush()
        return {"ok": True, "use_id": use.id, "text": text}

    async def suggestion_sent(self, sid: str, data: Any) -> dict[str, Any]:
        """A message of the agent's with an inserted suggestion went out: sent unchanged, or edited."""
        req = parse(events.SuggestionSent, data)
        agent_id, _ = await self._me(sid)
        async with self.sessions() as s, s.begin():
            ticket = await self._mine(s, req.ticket_id, agent_id, seated=False)
            use = await s.get(CopilotUse, req.use_id)
            message = await s.get(Message, req.message_id)
            if use is None or use.agent_id != agent_id or use.outcome is not None:
                raise InvalidPayload("use_id: not an open insert of yours")
            if message is None or message.conversation_id != ticket.conversation_id or message.sender != "agent":
                raise InvalidPayload("message_id: not your message in this chat")
            use.message_id, use.outcome, use.sent_at = message.id, outcome(use.inserted_text, message.text), utcnow()
            result = use.outcome
        return {"ok": True, "outcome": result}

    async def suggest_for(self, sid: str, data: Any) -> dict[str, Any]:
        """The console's ask for the chat on screen (``for_screen``); with the copilot off, never anything."""
        req = parse(events.SuggestFor, data)
        agent_id, _ = await self._me(sid)
        out = await self.for_screen(req.ticket_id, agent_id, req.message_id) if self.enabled else None
        return events.wire(events.Suggested(suggestions=out))  # type: ignore[no-any-return]

    async def suggestions_of(self, sid: str, data: Any) -> dict[str, Any]:
        """Every set shown in this chat, oldest first: after a reload each stays on its message."""
        ref = parse(events.TicketRef, data)
        agent_id, _ = await self._me(sid)
        async with reading(self.sessions) as s:
            await self._mine(s, ref.ticket_id, agent_id)
            rows = (
                await s.execute(
                    select(CopilotSuggestion.payload)
                    .where(CopilotSuggestion.ticket_id == ref.ticket_id)
                    .order_by(CopilotSuggestion.created_at, CopilotSuggestion.id)
                )
            ).scalars()
            sets = [events.SuggestionsOut.model_validate(p).model_dump() for p in rows]
        return {"ok": True, "suggestions": sets}

    async def save_to_kb(self, sid: str, data: Any) -> dict[str, Any]:
        """An agent's answer to the KB: a draft article (question + answer) or the question as a new example of
        an article, as a draft version editors publish as usual, and an entry in their inbox naming the agent and
        the ticket."""
        req = parse(events.SaveToKB, data)
        agent_id, name = await self._me(sid)
        async with self.sessions() as s, s.begin():
            ticket = await self._mine(s, req.ticket_id, agent_id, seated=False)
            rows = (
                await s.execute(
                    select(Message.id, Message.sender, Message.text, Message.parse)
                    .where(Message.conversation_id == ticket.conversation_id)
                    .order_by(Message.id)
                )
            ).all()
            said = [said_of(r.id, r.sender, r.text, r.parse) for r in rows]
            answer = next((m for m in said if m.id == req.message_id), None)
            if answer is None or answer.sender != "agent":
                raise InvalidPayload("message_id: not an agent's message in this chat")
            asked = question_before(said, answer.id)
            question = " ".join((req.question or (asked.text if asked else "")).split())
            if not question:
                raise InvalidPayload("There is no customer question before this answer; type one.")
            note = f"saved to the KB by {name} from ticket #{ticket.id}"
            if req.mode == "examples":
                if not req.article_id:
                    raise InvalidPayload("Choose the article the question belongs to.")
                version = await kb_store.add_questions(s, req.article_id, [question], name)
                article_id = req.article_id
            else:
                taken = set((await s.execute(select(KBArticle.id))).scalars())
                article_id = draft_id(question, taken)
                title = (req.title or question)[:200].rstrip("?. ") or question[:200]
                article = kb_store.validate(
                    {"id": article_id, "title": title, "answer": answer.text, "questions": [question],
                     "team": ticket.team or "support"}, "saved answer",
                )  # fmt: skip
                version = await kb_store.create_article(s, article, name, note=note)
            entry = UnansweredQuestion(
                text=question[:1000], conversation_id=ticket.conversation_id, reason=inbox_reason(name, ticket.id),
                article_id=article_id,
            )  # fmt: skip
            s.add(entry)
            await s.flush()
            saved = CopilotSaved(
                ticket_id=ticket.id, conversation_id=ticket.conversation_id, agent_id=agent_id, agent_name=name,
                message_id=answer.id, question=question, answer=answer.text, mode=req.mode, article_id=article_id,
                version_id=version.id, inbox_id=entry.id,
            )  # fmt: skip
            s.add(saved)
            await s.flush()
            out = events.SavedToKB(
                saved_id=saved.id, mode=req.mode, article_id=article_id, version=version.number, question=question
            )
        return {"ok": True, "saved": out.model_dump()}


# ================================================================================================================
# Metrics (for the reports): shown, inserted, sent unchanged or edited, per article and per agent
# ================================================================================================================


@dataclass(frozen=True)
class UsageRow:
    key: str  # the article id (or "canned:<id>"), or the agent's id
    shown: int
    inserted: int
    unchanged: int
    edited: int


async def usage(s: AsyncSession, by: Literal["article", "agent"]) -> list[UsageRow]:
    """Counts per article (and canned response: "canned:<id>") or per agent id, most shown first."""
    key = (
        case((CopilotItem.kind == "article", CopilotItem.ref), else_="canned:" + CopilotItem.ref)
        if by == "article"
        else cast(CopilotSuggestion.agent_id, String(32))
    )
    uses = (
        select(
            CopilotUse.item_id,
            func.count().label("inserted"),
            func.sum(case((CopilotUse.outcome == "unchanged", 1), else_=0)).label("unchanged"),
            func.sum(case((CopilotUse.outcome == "edited", 1), else_=0)).label("edited"),
        )
        .group_by(CopilotUse.item_id)
        .subquery()
    )
    shown = func.count(CopilotItem.id)
    stmt = (
        select(
            key.label("key"),
            shown,
            func.coalesce(func.sum(uses.c.inserted), 0),
            func.coalesce(func.sum(uses.c.unchanged), 0),
            func.coalesce(func.sum(uses.c.edited), 0),
        )
        .join(CopilotSuggestion, CopilotSuggestion.id == CopilotItem.suggestion_id)
        .outerjoin(uses, uses.c.item_id == CopilotItem.id)
        .group_by(key)
        .order_by(shown.desc(), key)
    )
    return [UsageRow(str(k), int(a), int(b), int(c), int(d)) for k, a, b, c, d in (await s.execute(stmt)).all()]
