"""The copilot's records on a real PostgreSQL: a suggestion set's id is made by the relay (52 bits, past a 32-bit
INTEGER), so it is stored, read back and used there as on SQLite."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from common.clock import utcnow
from common.db import HotPathWriter, create_engine, session_factory
from common.settings import normalize_db_url
from handoff import events
from handoff.copilot import Copilot, new_suggestion_id
from handoff.models import Conversation, CopilotItem, CopilotSuggestion, Ticket
from handoff.outbox import Outbox
from tests.fakes import RecordingSio
from tests.services import create_pg_database, drop_pg_database
from warmline.migrate import upgrade

pytestmark = pytest.mark.postgres


async def test_a_suggestion_set_and_its_items_are_stored_on_postgresql() -> None:
    url, name = await create_pg_database()
    engine = None
    writer = None
    try:
        db_url = normalize_db_url(url)
        upgrade(db_url)
        engine = create_engine(db_url)
        sessions = session_factory(engine)
        writer = HotPathWriter(engine)
        async with sessions() as s, s.begin():
            now = utcnow()
            s.add(Conversation(id="pg-chat", status="agent", customer={}, bot_paused=True, created_at=now,
                               updated_at=now))  # fmt: skip
            await s.flush()
            ticket = Ticket(conversation_id="pg-chat", status="assigned", reason="customer_asked", card={})
            s.add(ticket)
            await s.flush()
            ticket_id = ticket.id
        sio = RecordingSio()
        helper = Copilot(sio, Outbox(sio), sessions, writer, source=None)  # type: ignore[arg-type]
        suggestion_id = new_suggestion_id()
        while suggestion_id < 2**31:  # the case that broke: any id past 32 bits
            suggestion_id = new_suggestion_id()
        shown = events.SuggestionsOut(
            suggestion_id=suggestion_id, ticket_id=ticket_id, message_id=None, question="where is my bill",
            context="message", kb_version="r1",
            articles=[events.SuggestedArticle(article_id="view-bill", title="Bills", excerpt="Billing",
                                              text="Bills are under Billing.", confidence=0.8, level="high",
                                              team="support")],
            canned=[],
        )  # fmt: skip
        await helper._store(shown, agent_id=1)
        async with sessions() as s:
            stored = await s.get(CopilotSuggestion, suggestion_id)
            assert stored is not None and stored.payload["suggestion_id"] == suggestion_id
            items = await s.scalar(
                select(func.count()).select_from(CopilotItem).where(CopilotItem.suggestion_id == suggestion_id)
            )
            assert items == 1
    finally:
        if writer is not None:
            writer.close()
        if engine is not None:
            await engine.dispose()
        await drop_pg_database(name)
