"""The hand-back to the bot, as I/O: tell Rasa (``conversation.RESUME_EVENTS``), then mark the conversation as no
longer paused. The rule (exactly once; if Rasa is down, the next bot turn resumes first) is in
``handoff.conversation``."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.errors import BotUnavailable
from handoff.bot_client import Bot
from handoff.models import Conversation

log = logging.getLogger(__name__)


async def resume_bot(sessions: async_sessionmaker[AsyncSession], bot: Bot, conversation_id: str) -> bool:
    """True once Rasa has the conversation back; False if Rasa is down (it stays marked paused)."""
    try:
        await bot.resume(conversation_id)
    except BotUnavailable:
        log.warning("could not resume %s in Rasa yet; will retry before its next bot turn", conversation_id)
        return False
    async with sessions() as s, s.begin():
        chat = await s.get(Conversation, conversation_id)
        if chat is not None:
            chat.bot_paused = False
    return True
