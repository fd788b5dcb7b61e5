"""Messages: a user's, as accepted; an answer's, created by whichever of its events comes first
and made final once, by its final event. Served back in conversation order (each answer right
after its question), and as the earlier messages an answer is given as context."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from chat_contracts.base import Usage
from chat_contracts.events import CompleteEvent, ErrorEvent, RoutedEvent, UserMessage
from chat_contracts.history import ContextMessage, HistoryMessage
from chat_history.db import execute, fetch_rows, fetch_value
from chat_history.store import FINAL_MESSAGE
from chat_history.store.tool_calls import calls_of


def _ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


# -- reads ---------------------------------------------------------------------------------------

# Conversation order: by when the question was asked, the question before its answer.
_ORDER = "coalesce(p.created_at, m.created_at) {0}, (m.role = 'assistant') {0}, m.created_at {0}"
# The last $4 messages of a session of its owner, in conversation order.
_SESSION_MESSAGES = f"""
    SELECT * FROM (
        SELECT m.id, m.role, m.content, m.status, m.created_at, m.model, m.provider, m.tool,
               m.error_code, m.error_message,
               coalesce(p.created_at, m.created_at) AS asked_at, m.role = 'assistant' AS answer
          FROM chat.messages m LEFT JOIN chat.messages p ON p.id = m.reply_to
         WHERE m.session_id = $1 AND m.org_id = $2 AND m.user_id = $3
         ORDER BY {_ORDER.format("DESC")}
         LIMIT $4
    ) AS last ORDER BY asked_at, answer, created_at
"""  # nosec B608


async def session_messages(
    conn: AsyncConnection, org_id: UUID, user_id: UUID, session_id: UUID, limit: int
) -> list[HistoryMessage]:
    rows = await fetch_rows(conn, _SESSION_MESSAGES, session_id, org_id, user_id, limit)
    calls = await calls_of(conn, org_id, [row["id"] for row in rows if row["role"] == "assistant"])
    return [
        HistoryMessage(
            message_id=row["id"],
            role=row["role"],
            text=row["content"],
            status=row["status"],
            created_at=row["created_at"].timestamp(),
            model=row["model"],
            provider=row["provider"],
            tool=row["tool"],
            error_code=row["error_code"],
            error_message=row["error_message"],
            tool_calls=calls.get(row["id"], []),
        )
        for row in rows
    ]


# The last $5 earlier messages of an answer, in conversation order: a stopped answer is context
# too (the user saw it, and may ask to go on), an empty one is not. It runs for every answer.
_CONTEXT = f"""
    SELECT role, content FROM (
        SELECT m.role, m.content,
               coalesce(p.created_at, m.created_at) AS asked_at,
               m.role = 'assistant' AS answer,
               m.created_at
        FROM chat.messages m LEFT JOIN chat.messages p ON p.id = m.reply_to
        WHERE m.session_id = $1 AND m.org_id = $2 AND m.user_id = $3
          AND (m.status = 'complete' OR (m.status = 'stopped' AND m.content <> ''))
          AND m.id <> $4
        ORDER BY {_ORDER.format("DESC")}
        LIMIT $5
    ) AS last ORDER BY asked_at, answer, created_at
"""  # nosec B608


async def earlier_messages(
    conn: AsyncConnection,
    org_id: UUID,
    user_id: UUID,
    session_id: UUID,
    exclude_message_id: UUID,
    limit: int,
) -> list[ContextMessage]:
    if limit <= 0:
        return []
    rows = await fetch_rows(conn, _CONTEXT, session_id, org_id, user_id, exclude_message_id, limit)
    return [ContextMessage(role=row["role"], text=row["content"]) for row in rows]


# -- writes --------------------------------------------------------------------------------------

_SAVE_USER_MESSAGE = """
    INSERT INTO chat.messages (id, session_id, org_id, user_id, role, content, status,
                               correlation_id, created_at, completed_at)
    VALUES ($1, $2, $3, $4, 'user', $5, 'complete', $6, $7, $7)
    ON CONFLICT (id) DO NOTHING
"""


async def save_user_message(conn: AsyncConnection, event: UserMessage) -> None:
    await execute(
        conn,
        _SAVE_USER_MESSAGE,
        event.message_id,
        event.session_id,
        event.user.org_id,
        event.user.user_id,
        event.text,
        event.correlation_id,
        _ts(event.received_at),
    )


# `routed` fills in what routing decided (a value already there is kept) and never overwrites a
# final status.
_SAVE_ROUTED = f"""
    INSERT INTO chat.messages AS m (id, session_id, org_id, user_id, role, correlation_id,
                                    status, reply_to, tier, tool)
    VALUES ($1, $2, $3, $4, 'assistant', $5, 'pending', $6, $7, $8)
    ON CONFLICT (id) DO UPDATE SET
        reply_to = coalesce(excluded.reply_to, m.reply_to),
        tier = coalesce(excluded.tier, m.tier),
        tool = coalesce(excluded.tool, m.tool),
        status = CASE WHEN m.status IN {FINAL_MESSAGE} THEN m.status ELSE excluded.status END
"""  # nosec B608


def _answer_ids(event: RoutedEvent | CompleteEvent | ErrorEvent) -> tuple[Any, ...]:
    """$1-$5 of the statements that create an answer."""
    return (event.message_id, event.session_id, event.org_id, event.user_id, event.correlation_id)


async def save_routed(conn: AsyncConnection, event: RoutedEvent) -> None:
    await execute(
        conn, _SAVE_ROUTED, *_answer_ids(event), event.user_message_id, event.tier, event.tool
    )


# An answer's final status and text, unless a final one already stands. A final event wins over
# a pending message, and over the final of a lower attempt (attempt 1's worker failed, attempt 2
# answered); a redelivered final of the same attempt, or a late one of a lower attempt, changes
# nothing. What describes the answer (model, provider, tool) is only filled in if the final
# event has it (the routing may have said already).
_SAVE_FINAL = f"""
    INSERT INTO chat.messages AS m (id, session_id, org_id, user_id, role, correlation_id,
                                    status, content, attempt, usage, error_code, error_message,
                                    completed_at, model, provider, tool)
    VALUES ($1, $2, $3, $4, 'assistant', $5, $6, $7, $8, $9::text::jsonb, $10, $11, now(),
            $12, $13, $14)
    ON CONFLICT (id) DO UPDATE SET
        status = excluded.status,
        content = excluded.content,
        attempt = excluded.attempt,
        usage = excluded.usage,
        error_code = excluded.error_code,
        error_message = excluded.error_message,
        completed_at = excluded.completed_at,
        model = coalesce(excluded.model, m.model),
        provider = coalesce(excluded.provider, m.provider),
        tool = coalesce(excluded.tool, m.tool)
    WHERE m.status NOT IN {FINAL_MESSAGE} OR m.attempt < excluded.attempt
"""  # nosec B608


def _usage_json(usage: Usage | None) -> str | None:
    return usage.model_dump_json() if usage is not None else None


async def save_final(conn: AsyncConnection, event: CompleteEvent | ErrorEvent) -> None:
    """The answer's final status and text: `complete` (or `stopped`, with what was generated
    until the stop) or `error` with its partial text."""
    if isinstance(event, CompleteEvent):
        values: tuple[Any, ...] = (
            event.status,
            event.text,
            event.attempt,
            _usage_json(event.usage),
            None,
            None,
            event.model,
            event.provider,
            event.tool,
        )
    else:
        call = event.llm_call
        values = (
            "error",
            event.partial_text,
            event.attempt,
            _usage_json(call.usage if call else None),
            event.code,
            event.message,
            call.model if call else None,
            call.provider if call else None,
            None,
        )
    await execute(conn, _SAVE_FINAL, *_answer_ids(event), *values)


_ENDED_ATTEMPT = f"SELECT attempt FROM chat.messages WHERE id = $1 AND status IN {FINAL_MESSAGE}"  # nosec B608


async def ended_attempt(conn: AsyncConnection, message_id: UUID) -> int | None:
    """The attempt whose final event ended the answer (None while it has not ended)."""
    attempt: int | None = await fetch_value(conn, _ENDED_ATTEMPT, message_id)
    return attempt
