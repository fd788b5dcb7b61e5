"""An answer's start (`StartAnswer`): the session's turn, then its earlier messages and its
budget hold, in one round trip for the LLM worker.

Two transactions: the claim (with the earlier messages, once the turn is the answer's) on the
driver connection, then the hold, so the session's row is not held while the org's budget row
is waited for (one org's holds are decided one at a time); the hold is one statement, so that
row is locked only while PostgreSQL runs it (docs/decisions/0010).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chat_contracts.history import ContextMessage, StartAnswer, StartReply, TurnReply
from chat_history.db import driver_transaction
from chat_history.settings import HistorySettings
from chat_history.store import budget, llm_calls, messages, turns
from chat_history.writer import EventWriter


async def claim_with_context(
    conn: AsyncConnection, request: StartAnswer
) -> tuple[TurnReply, list[ContextMessage]]:
    """The first transaction: the session's turn and, once it is the answer's, the earlier
    messages."""
    # RabbitMQ delivers a request to one worker at a time: an attempt asking now means every
    # earlier attempt's worker is gone. Their calls first: llm_calls rows are locked before the
    # session's row, as final and progress events lock them.
    await llm_calls.interrupt_streaming_calls(conn, request.message_id)
    turn = await turns.claim_turn(
        conn,
        request.org_id,
        request.user_id,
        request.session_id,
        request.message_id,
        interrupt=request.interrupt,
        stale_after_seconds=request.stale_after_seconds,
    )
    if turn.status != "claimed":
        return turn, []
    context = await messages.earlier_messages(
        conn,
        request.org_id,
        request.user_id,
        request.session_id,
        request.exclude_message_id,
        request.context_limit,
    )
    return turn, context


class AnswerStarts:
    def __init__(self, engine: AsyncEngine, settings: HistorySettings, writer: EventWriter) -> None:
        self._engine = engine
        self._settings = settings
        self._writer = writer

    async def start(self, request: StartAnswer) -> StartReply:
        """A turn held by an answer whose final event the writer is writing is claimed again
        once that is written, rather than answered "busy" (the worker would ask again later,
        tens of milliseconds or more)."""
        async with driver_transaction(self._engine, request.org_id) as conn:
            turn, context = await claim_with_context(conn, request)
        holder = turn.holder_message_id
        if (
            turn.status == "busy"
            and holder is not None
            and await self._writer.final_written(holder)
        ):
            async with driver_transaction(self._engine, request.org_id) as conn:
                turn, context = await claim_with_context(conn, request)
        if turn.status != "claimed":
            return StartReply(turn=turn)
        # The claim interrupted the answer's streaming calls already.
        hold = budget.Hold(
            request.org_id,
            request.message_id,
            budget.hold_for(request.hold, context),
            self._settings.default_org_budget_usd,
            self._settings.budget_hold_ttl_seconds,
        )
        held = await budget.hold_budget(self._engine, hold)
        return StartReply(turn=turn, context=context, budget=held)
