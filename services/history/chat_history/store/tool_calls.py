"""The audit of tool calls: one row per call, `running` from its call, then `ok` or `error`
with its output and latency."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from chat_contracts.events import ToolCallEvent, ToolResultEvent
from chat_contracts.history import HistoryToolCall
from chat_history.db import execute, fetch_rows

_SAVE_CALL = """
    INSERT INTO chat.tool_audit (call_id, message_id, session_id, org_id, user_id, tool, input,
                                 status, correlation_id)
    VALUES ($1, $2, $3, $4, $5, $6, $7::text::jsonb, 'running', $8)
    ON CONFLICT (call_id) DO NOTHING
"""
_SAVE_RESULT = """
    INSERT INTO chat.tool_audit (call_id, message_id, session_id, org_id, user_id, tool, input,
                                 output, status, latency_ms, correlation_id, completed_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7::text::jsonb, $8::text::jsonb, $9, $10, $11, now())
    ON CONFLICT (call_id) DO UPDATE SET
        output = excluded.output,
        status = excluded.status,
        latency_ms = excluded.latency_ms,
        completed_at = excluded.completed_at
"""


def _call_ids(event: ToolCallEvent | ToolResultEvent) -> tuple[Any, ...]:
    """$1-$7 of the statements that create a tool call's row."""
    return (
        event.call_id,
        event.message_id,
        event.session_id,
        event.org_id,
        event.user_id,
        event.tool,
        json.dumps(event.input),
    )


async def save_tool_call(conn: AsyncConnection, event: ToolCallEvent) -> None:
    await execute(conn, _SAVE_CALL, *_call_ids(event), event.correlation_id)


async def save_tool_result(conn: AsyncConnection, event: ToolResultEvent) -> None:
    await execute(
        conn,
        _SAVE_RESULT,
        *_call_ids(event),
        json.dumps(event.output),
        "error" if event.is_error else "ok",
        event.latency_ms,
        event.correlation_id,
    )


_CALLS_OF = """
    SELECT message_id, call_id, tool, input::text AS input, output::text AS output, status
      FROM chat.tool_audit
     WHERE message_id = ANY($1::uuid[]) AND org_id = $2
     ORDER BY created_at
"""


async def calls_of(
    conn: AsyncConnection, org_id: UUID, message_ids: list[UUID]
) -> dict[UUID, list[HistoryToolCall]]:
    """The tool calls of each of these answers, in the order they were made."""
    calls: dict[UUID, list[HistoryToolCall]] = defaultdict(list)
    if not message_ids:
        return calls
    for row in await fetch_rows(conn, _CALLS_OF, message_ids, org_id):
        output = row["output"]
        calls[row["message_id"]].append(
            HistoryToolCall(
                call_id=row["call_id"],
                tool=row["tool"],
                input=json.loads(row["input"]),
                output=json.loads(output) if output is not None else None,
                is_error=row["status"] == "error",
            )
        )
    return calls
