"""Model calls: one row per call, created or updated by its id from a progress report or the
answer's final event.

A final status is never changed again, and its usage is the exact one; `interrupted` replaces
`streaming`, never the other way round; until the call is final its usage only grows (reports
are cumulative: a late one must not lower it).
"""

from __future__ import annotations

from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from chat_contracts.base import LlmCall
from chat_contracts.events import CompleteEvent, ErrorEvent, ProgressEvent
from chat_history.db import execute, fetch_value
from chat_history.store import FINAL_CALL


def _final_or_greatest(column: str) -> str:
    return (
        f"{column} = CASE WHEN excluded.status IN {FINAL_CALL} THEN excluded.{column} "
        f"ELSE greatest(c.{column}, excluded.{column}) END"
    )


_RECORD = f"""
    INSERT INTO chat.llm_calls AS c (id, message_id, session_id, org_id, user_id, provider, model,
                                     input_tokens, output_tokens, cost_usd, ttft_ms, total_ms,
                                     status, error_code, correlation_id, attempt)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
    ON CONFLICT (id) DO UPDATE SET
        {_final_or_greatest("input_tokens")},
        {_final_or_greatest("output_tokens")},
        {_final_or_greatest("cost_usd")},
        {_final_or_greatest("total_ms")},
        status = CASE WHEN excluded.status = 'streaming' THEN c.status ELSE excluded.status END,
        ttft_ms = coalesce(excluded.ttft_ms, c.ttft_ms),
        error_code = coalesce(excluded.error_code, c.error_code)
    WHERE c.status NOT IN {FINAL_CALL}
"""  # nosec B608


async def record_llm_call(
    conn: AsyncConnection, event: CompleteEvent | ErrorEvent | ProgressEvent, call: LlmCall
) -> None:
    await execute(
        conn,
        _RECORD,
        call.call_id,
        event.message_id,
        event.session_id,
        event.org_id,
        event.user_id,
        call.provider,
        call.model,
        call.usage.input_tokens,
        call.usage.output_tokens,
        call.usage.cost_usd,
        call.ttft_ms,
        call.total_ms,
        call.status,
        call.error_code,
        event.correlation_id,
        event.attempt,
    )


_INTERRUPT_STREAMING = """
    UPDATE chat.llm_calls SET status = 'interrupted'
     WHERE message_id = $1 AND status = 'streaming' AND ($2::integer IS NULL OR attempt <= $2)
"""


async def interrupt_streaming_calls(
    conn: AsyncConnection, message_id: UUID, up_to_attempt: int | None = None
) -> None:
    """Calls of the answer still `streaming` will never report again: their worker is gone."""
    await execute(conn, _INTERRUPT_STREAMING, message_id, up_to_attempt)


_LATER_ATTEMPT = """
    SELECT EXISTS (SELECT 1 FROM chat.llm_calls WHERE message_id = $1 AND attempt > $2)
"""


async def later_attempt_called(conn: AsyncConnection, message_id: UUID, attempt: int) -> bool:
    """Has an attempt of the answer after `attempt` reported a call (it is running)?"""
    return bool(await fetch_value(conn, _LATER_ATTEMPT, message_id, attempt))
