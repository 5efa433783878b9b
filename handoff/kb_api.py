"""The KB editor's REST API (one blueprint, ``/api/kb``), served by the relay.

Every route needs a bearer token from ``POST /api/agent/login`` whose agent has the role ``editor`` or ``admin``.
Handlers parse the body with its pydantic model, call ``knowledge.store`` / ``knowledge.inbox`` inside one
transaction and answer JSON; any error of the relay's tree (``common.errors``, which
``common.errors`` joins; a body that does not validate is one) becomes ``{"error": {"code", "message"}}`` with the
error's status, in one place (``handoff.rest.on_error``). A publish needs nothing
else: the action server sees the new KB revision within a second (actions/kb_service.py). Endpoint table:
docs/knowledge-base.md.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.db import reading
from handoff.models import Agent
from handoff.rest import body, logged_in, query
from knowledge import importers, inbox, store
from knowledge.schemas import (
    AddQuestions,
    ArticleContent,
    ExportQuery,
    GroupToArticle,
    GroupToNewArticle,
    Import,
    ListQuery,
    NewArticle,
    Publish,
    QuestionIds,
    Rollback,
    article_json,
    version_json,
)

EDITOR_ROLES = ("editor", "admin")

kb_api = Blueprint("kb_api", url_prefix="/api/kb")


# ---------------------------------------------------------------------------------------------------------------
# Plumbing: the relay's REST helpers (handoff/rest.py) do bodies, queries, logins and errors


def sessions(request: Request) -> async_sessionmaker[AsyncSession]:
    return request.app.ctx.sessions  # type: ignore[no-any-return]


async def editor(request: Request) -> Agent:
    """The logged-in editor, or 401 (no or bad token) / 403 (an agent without editing rights).

    Checked before the body is even parsed, in a short session of its own, so an import is never parsed for a
    stranger and the write transaction (a lock on SQLite) stays as short as the write itself.
    """
    async with reading(sessions(request)) as s:
        return await logged_in(request, s, EDITOR_ROLES, "Editing the knowledge base needs the editor or admin role.")


def content(raw: BaseModel, article_id: str) -> dict[str, Any]:
    return {**raw.model_dump(include=set(ArticleContent.model_fields)), "id": article_id}


# ---------------------------------------------------------------------------------------------------------------
# Articles


@kb_api.get("/articles")
async def list_articles(request: Request) -> HTTPResponse:
    await editor(request)
    params = query(request, ListQuery)
    async with sessions(request)() as s:
        views = await store.list_articles(s, params.q, params.status)
        revision = await store.revision(s)
    return response.json({"articles": [article_json(v) for v in views], "revision": revision})


@kb_api.post("/articles")
async def create_article(request: Request) -> HTTPResponse:
    agent = await editor(request)
    new = body(request, NewArticle)
    async with sessions(request)() as s, s.begin():
        article = store.validate(content(new, new.id))
        await store.create_article(s, article, agent.username)
        view = await store.view(s, article.id)
    return response.json({"article": article_json(view)}, status=201)


@kb_api.get("/articles/<article_id:str>")
async def get_article(request: Request, article_id: str) -> HTTPResponse:
    await editor(request)
    async with sessions(request)() as s:
        view = await store.view(s, article_id)
        history = await store.versions(s, article_id)
    return response.json(
        {"article": article_json(view), "versions": [version_json(v, view.published_version) for v in history]}
    )


@kb_api.put("/articles/<article_id:str>")
async def update_article(request: Request, article_id: str) -> HTTPResponse:
    """A new version; what customers see changes only when it is published."""
    agent = await editor(request)
    edit = body(request, ArticleContent)
    async with sessions(request)() as s, s.begin():
        await store.save_version(s, store.validate(content(edit, article_id)), agent.username)
        view = await store.view(s, article_id)
    return response.json({"article": article_json(view)})


@kb_api.post("/articles/<article_id:str>/questions")
async def add_questions(request: Request, article_id: str) -> HTTPResponse:
    agent = await editor(request)
    add = body(request, AddQuestions)
    async with sessions(request)() as s, s.begin():
        await store.add_questions(s, article_id, add.questions, agent.username)
        if add.publish:
            await store.publish(s, article_id)
        view = await store.view(s, article_id)
    return response.json({"article": article_json(view)})


@kb_api.post("/articles/<article_id:str>/publish")
async def publish(request: Request, article_id: str) -> HTTPResponse:
    await editor(request)
    which = body(request, Publish)
    async with sessions(request)() as s, s.begin():
        await store.publish(s, article_id, which.version)
        view = await store.view(s, article_id)
        revision = await store.revision(s)
    return response.json({"article": article_json(view), "revision": revision})


@kb_api.post("/articles/<article_id:str>/unpublish")
async def unpublish(request: Request, article_id: str) -> HTTPResponse:
    await editor(request)
    async with sessions(request)() as s, s.begin():
        await store.unpublish(s, article_id)
        view = await store.view(s, article_id)
        revision = await store.revision(s)
    return response.json({"article": article_json(view), "revision": revision})


@kb_api.post("/articles/<article_id:str>/rollback")
async def rollback(request: Request, article_id: str) -> HTTPResponse:
    agent = await editor(request)
    to = body(request, Rollback)
    async with sessions(request)() as s, s.begin():
        await store.rollback(s, article_id, to.version, agent.username)
        view = await store.view(s, article_id)
        revision = await store.revision(s)
    return response.json({"article": article_json(view), "revision": revision})


@kb_api.get("/revision")
async def revision(request: Request) -> HTTPResponse:
    await editor(request)
    async with sessions(request)() as s:
        return response.json({"revision": await store.revision(s)})


# ---------------------------------------------------------------------------------------------------------------
# Import and export


@kb_api.post("/import")
async def import_articles(request: Request) -> HTTPResponse:
    """All or nothing: the file is parsed and checked first, then stored in one transaction."""
    agent = await editor(request)
    upload = body(request, Import)
    # Parsing a few MB of CSV is CPU work: off the event loop, so chats on this relay keep flowing.
    kb = await asyncio.to_thread(importers.parse, upload.content, upload.format)
    async with sessions(request)() as s, s.begin():
        result = await store.import_kb(s, kb, agent.username, publish_all=upload.publish)
        revision = await store.revision(s)
    return response.json(
        {
            "imported": len(kb.articles),
            "questions": sum(len(a.questions) for a in kb.articles),
            "created": list(result.created),
            "updated": list(result.updated),
            "unchanged": list(result.unchanged),
            "published": upload.publish,
            "revision": revision,
        }
    )


@kb_api.get("/export")
async def export_articles(request: Request) -> HTTPResponse:
    await editor(request)
    params = query(request, ExportQuery)
    async with sessions(request)() as s:
        kb = await (store.latest_kb(s) if params.drafts else store.published_kb(s))
    mime = "text/csv" if params.format == "csv" else "application/yaml"
    name = f"warmline-kb{'-drafts' if params.drafts else ''}.{'csv' if params.format == 'csv' else 'yml'}"
    return response.text(
        importers.export(kb, params.format),
        content_type=f"{mime}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# ---------------------------------------------------------------------------------------------------------------
# The unanswered-questions inbox


@kb_api.get("/inbox")
async def inbox_groups(request: Request) -> HTTPResponse:
    await editor(request)
    async with sessions(request)() as s:
        groups = await inbox.open_groups(s)
    return response.json(
        {
            "groups": [
                {
                    "label": g.group.label,
                    "size": len(g.group.ids),
                    "questions": [{"id": i, "text": t} for i, t in zip(g.group.ids, g.group.texts, strict=True)],
                    "reasons": list(g.reasons),
                    "last_asked": g.last_asked.isoformat(),
                }
                for g in groups
            ]
        }
    )


@kb_api.post("/inbox/new-article")
async def inbox_new_article(request: Request) -> HTTPResponse:
    agent = await editor(request)
    new = body(request, GroupToNewArticle)
    draft = new.model_dump(exclude={"question_ids", "publish"})
    async with sessions(request)() as s, s.begin():
        await inbox.to_new_article(s, new.question_ids, draft, agent.username)
        if new.publish:
            await store.publish(s, new.id)
        view = await store.view(s, new.id)
    return response.json({"article": article_json(view)}, status=201)


@kb_api.post("/inbox/add-to-article")
async def inbox_add_to_article(request: Request) -> HTTPResponse:
    agent = await editor(request)
    add = body(request, GroupToArticle)
    async with sessions(request)() as s, s.begin():
        await inbox.to_existing_article(s, add.question_ids, add.article_id, agent.username)
        if add.publish:
            await store.publish(s, add.article_id)
        view = await store.view(s, add.article_id)
    return response.json({"article": article_json(view)})


@kb_api.post("/inbox/dismiss")
async def inbox_dismiss(request: Request) -> HTTPResponse:
    await editor(request)
    ids = body(request, QuestionIds)
    async with sessions(request)() as s, s.begin():
        await inbox.dismiss(s, ids.question_ids)
    return response.json({"dismissed": len(ids.question_ids)})
