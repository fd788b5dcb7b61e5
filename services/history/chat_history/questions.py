"""History's answers to the questions it is asked (request/reply on its RPC queue)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from chat_contracts.history import (
    AnyHistoryRequest,
    GetTimeline,
    HistoryReply,
    OpenSession,
    StartAnswer,
)
from chat_history.answers import AnswerStarts
from chat_history.db import org_transaction, retry_transient
from chat_history.store import sessions, timings


class Questions:
    def __init__(self, engine: AsyncEngine, starts: AnswerStarts) -> None:
        self._engine = engine
        self._starts = starts

    async def answer(self, request: AnyHistoryRequest) -> HistoryReply:
        """The reply; a transaction rolled back as a deadlock victim (or on a connection found
        closed) is tried again: the asker is waiting."""
        return await retry_transient(lambda: self._answer(request))

    async def _answer(self, request: AnyHistoryRequest) -> HistoryReply:
        if isinstance(request, StartAnswer):
            return await self._starts.start(request)
        async with org_transaction(self._engine, request.org_id) as conn:
            match request:
                case OpenSession():
                    return await sessions.open_session(
                        conn,
                        request.org_id,
                        request.user_id,
                        request.session_id,
                        request.history_limit,
                    )
                case GetTimeline():
                    return await timings.timeline(
                        conn, request.org_id, request.user_id, request.message_id
                    )
