"""Reads and idempotent writes of the chat tables.

Every write is keyed by an id that comes with the event (message id, call id), so a redelivered
event updates nothing twice and never duplicates a row. Every read is scoped to the org and user
that asked.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import and_, bindparam, case, func, literal, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import aliased

from chat_history.db import execute, fetch_row, fetch_row_at_once, fetch_rows, fetch_value
from chat_history.tables import (
    messages,
    org_budgets,
    sessions,
    tool_audit,
)
from chat_shared.contracts import (
    BudgetReply,
    CompleteEvent,
    ContextTurn,
    ErrorEvent,
    HistoryMessage,
    HistoryToolCall,
    LlmCall,
    ProgressEvent,
    RoutedEvent,
    SessionSnapshot,
    StartAnswer,
    ToolCallEvent,
    ToolResultEvent,
    TurnReply,
    Usage,
    UserMessage,
)
from chat_shared.pricing import max_cost

log = logging.getLogger("chat_history.repository")

TERMINAL = ("complete", "error", "stopped")
# A model call's final statuses; `streaming` and `interrupted` are not (a progress report, a
# call that never finished).
FINAL_CALL = ("ok", "error", "stopped")


def _ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _owned_session(session_id: UUID, org_id: UUID, user_id: UUID) -> Any:
    return and_(
        sessions.c.id == session_id, sessions.c.org_id == org_id, sessions.c.user_id == user_id
    )


# -- sessions ------------------------------------------------------------------------------


async def open_session(
    conn: AsyncConnection, org_id: UUID, user_id: UUID, session_id: UUID | None, limit: int
) -> SessionSnapshot:
    if session_id is None:
        new_id = uuid4()
        await conn.execute(sessions.insert().values(id=new_id, org_id=org_id, user_id=user_id))
        return SessionSnapshot(status="ok", session_id=new_id)
    row = (
        await conn.execute(
            select(sessions.c.ended_at).where(_owned_session(session_id, org_id, user_id))
        )
    ).first()
    if row is None:
        # Another user's session and a session that does not exist look the same to the caller.
        return SessionSnapshot(status="forbidden")
    return SessionSnapshot(
        status="ok",
        session_id=session_id,
        ended=row.ended_at is not None,
        messages=await session_messages(conn, org_id, user_id, session_id, limit),
    )


_TOUCH = (
    "UPDATE chat.sessions SET last_activity_at = greatest(last_activity_at, now()) WHERE id = $1"
)


async def touch_session(conn: AsyncConnection, session_id: UUID) -> None:
    await execute(conn, _TOUCH, session_id)


async def end_idle_sessions(conn: AsyncConnection, idle_seconds: float) -> list[UUID]:
    """End every org's idle sessions (a SECURITY DEFINER function: the sweep is cross-org)."""
    result = await conn.execute(
        text("SELECT ended.id FROM chat.end_idle_sessions(:seconds) AS ended(id)"),
        {"seconds": idle_seconds},
    )
    return [row.id for row in result]


# -- the session's turn (issue 8: one answer streams per session at a time) -----------------

# One statement (one round trip): `held` locks the owned session row, so concurrent claims are
# decided one after another; it is the holder before this claim, which is also the holder that
# refused it. No row: the asker has no such session.
_CLAIM = """
    WITH held AS (
        SELECT id, active_message_id, active_since FROM chat.sessions
         WHERE id = $1 AND org_id = $2 AND user_id = $3
           FOR UPDATE
    ), claimed AS (
        UPDATE chat.sessions AS s
           SET active_message_id = $4, active_since = now()
          FROM held
         WHERE s.id = held.id
           AND (held.active_message_id IS NULL
                OR held.active_message_id = $4
                OR held.active_since < now() - make_interval(secs => $5)
                OR $6)
        RETURNING s.id
    )
    SELECT held.active_message_id AS holder, EXISTS (SELECT 1 FROM claimed) AS claimed FROM held
"""
_CREATE_CLAIMED = """
    INSERT INTO chat.sessions (id, org_id, user_id, active_message_id, active_since)
    VALUES ($1, $2, $3, $4, now())
    ON CONFLICT (id) DO NOTHING
    RETURNING id
"""


async def claim_turn(
    conn: AsyncConnection,
    org_id: UUID,
    user_id: UUID,
    session_id: UUID,
    message_id: UUID,
    *,
    interrupt: bool,
    stale_after_seconds: float,
) -> TurnReply:
    """Give the session's turn to `message_id` if it is free, already its own, or stale (or
    take it over with `interrupt`); otherwise say who holds it."""
    owner = (session_id, org_id, user_id, message_id)
    row = await fetch_row(conn, _CLAIM, *owner, float(stale_after_seconds), interrupt)
    if row is not None:
        holder = row["holder"]
        if not row["claimed"]:
            return TurnReply(status="busy", holder_message_id=holder)
        return TurnReply(
            status="claimed",
            holder_message_id=holder if holder not in (None, message_id) else None,
        )
    # No such session of this user. `open_session` normally creates it first; if the claim
    # came first, create it holding the turn. An id taken by another user or org (invisible
    # under row-level security, but still a conflict) creates and changes nothing.
    if await fetch_value(conn, _CREATE_CLAIMED, *owner) is not None:
        return TurnReply(status="claimed")
    log.warning("refused a turn claim for a session the asker does not own")
    return TurnReply(status="busy")


_RELEASE_TURN = """
    UPDATE chat.sessions SET active_message_id = NULL, active_since = NULL
     WHERE id = $1 AND active_message_id = $2
"""
_KEEP_TURN = """
    UPDATE chat.sessions SET active_since = now() WHERE id = $1 AND active_message_id = $2
"""


async def release_turn(conn: AsyncConnection, session_id: UUID, message_id: UUID) -> None:
    """Free the session's turn if `message_id` holds it (its answer has ended)."""
    await execute(conn, _RELEASE_TURN, session_id, message_id)


async def _keep_turn_alive(conn: AsyncConnection, session_id: UUID, message_id: UUID) -> None:
    """A progress report proves the holder's worker is alive: the turn is not stale."""
    await execute(conn, _KEEP_TURN, session_id, message_id)


def _ordered() -> Any:
    """The messages of session `:session_id` of `:org_id`'s `:user_id`, in conversation order:
    each answer right after its question. Built once, with bound parameters: SQLAlchemy then
    reuses the statement's cache key instead of building the query and its key per call."""
    parent = aliased(messages)
    return (
        select(messages)
        .outerjoin(parent, parent.c.id == messages.c.reply_to)
        .where(
            messages.c.session_id == bindparam("session_id"),
            messages.c.org_id == bindparam("org_id"),
            messages.c.user_id == bindparam("user_id"),
        )
        .order_by(
            func.coalesce(parent.c.created_at, messages.c.created_at),
            case((messages.c.role == "user", literal(0)), else_=literal(1)),
            messages.c.created_at,
        )
    )


_SESSION_MESSAGES = _ordered()
# The last $5 earlier turns of an answer, in the order of `_ordered`: a stopped answer is
# context too (the user saw it, and may ask to go on), an empty one is not. Hand-written for the
# driver connection: it runs for every answer (`StartAnswer`).
_CONTEXT = """
    SELECT role, content FROM (
        SELECT m.role, m.content,
               coalesce(p.created_at, m.created_at) AS asked_at,
               CASE WHEN m.role = 'user' THEN 0 ELSE 1 END AS answer_after,
               m.created_at
        FROM chat.messages m LEFT JOIN chat.messages p ON p.id = m.reply_to
        WHERE m.session_id = $1 AND m.org_id = $2 AND m.user_id = $3
          AND (m.status = 'complete' OR (m.status = 'stopped' AND m.content <> ''))
          AND m.id <> $4
        ORDER BY asked_at DESC, answer_after DESC, m.created_at DESC
        LIMIT $5
    ) AS last ORDER BY asked_at, answer_after, created_at
"""


async def session_messages(
    conn: AsyncConnection, org_id: UUID, user_id: UUID, session_id: UUID, limit: int
) -> list[HistoryMessage]:
    owner = {"session_id": session_id, "org_id": org_id, "user_id": user_id}
    rows = (await conn.execute(_SESSION_MESSAGES, owner)).all()[-limit:]
    calls: dict[UUID, list[HistoryToolCall]] = defaultdict(list)
    ids = [row.id for row in rows if row.role == "assistant"]
    if ids:
        for call in await conn.execute(
            select(tool_audit)
            .where(tool_audit.c.message_id.in_(ids), tool_audit.c.org_id == org_id)
            .order_by(tool_audit.c.created_at)
        ):
            calls[call.message_id].append(
                HistoryToolCall(
                    call_id=call.call_id,
                    tool=call.tool,
                    input=call.input,
                    output=call.output,
                    is_error=call.status == "error",
                )
            )
    return [
        HistoryMessage(
            message_id=row.id,
            role=row.role,
            text=row.content,
            status=row.status,
            created_at=row.created_at.timestamp(),
            model=row.model,
            provider=row.provider,
            tool=row.tool,
            error_code=row.error_code,
            error_message=row.error_message,
            tool_calls=calls.get(row.id, []),
        )
        for row in rows
    ]


async def context_turns(
    conn: AsyncConnection,
    org_id: UUID,
    user_id: UUID,
    session_id: UUID,
    exclude_message_id: UUID,
    limit: int,
) -> list[ContextTurn]:
    if limit <= 0:
        return []
    rows = await fetch_rows(conn, _CONTEXT, session_id, org_id, user_id, exclude_message_id, limit)
    return [ContextTurn(role=row["role"], text=row["content"]) for row in rows]


# -- events --------------------------------------------------------------------------------
# Hand-written SQL on the driver connection (`db.execute`): these run for every event history
# persists, and through SQLAlchemy Core each cost ~4x the CPU (docs/benchmarks.md).

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
    await touch_session(conn, event.session_id)


# An assistant message is created by whichever of its events comes first; `routed` fills in
# what routing decided (a value already there is kept) and never overwrites a terminal status.
_SAVE_ROUTED = """
    INSERT INTO chat.messages AS m (id, session_id, org_id, user_id, role, correlation_id,
                                    status, reply_to, tier, tool)
    VALUES ($1, $2, $3, $4, 'assistant', $5, 'pending', $6, $7, $8)
    ON CONFLICT (id) DO UPDATE SET
        reply_to = coalesce(excluded.reply_to, m.reply_to),
        tier = coalesce(excluded.tier, m.tier),
        tool = coalesce(excluded.tool, m.tool),
        status = CASE WHEN m.status IN ('complete', 'error', 'stopped') THEN m.status
                      ELSE excluded.status END
"""


async def save_routed(conn: AsyncConnection, event: RoutedEvent) -> None:
    await execute(
        conn,
        _SAVE_ROUTED,
        *_assistant_ids(event),
        event.user_message_id,
        event.tier,
        event.tool,
    )


def _assistant_ids(event: RoutedEvent | CompleteEvent | ErrorEvent) -> tuple[Any, ...]:
    """$1-$5 of the statements that create an assistant message."""
    return (
        event.message_id,
        event.session_id,
        event.org_id,
        event.user_id,
        event.correlation_id,
    )


# An answer's final status and text, unless a final one already stands. A final event wins over
# a pending message, and over the final of a lower attempt (attempt 1's worker failed, attempt 2
# answered); a redelivered final of the same attempt, or a late one of a lower attempt, changes
# nothing. What describes the answer (model, provider, tool) is only filled in if the final
# event has it (the routing may have said already).
_SAVE_FINAL = """
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
    WHERE m.status NOT IN ('complete', 'error', 'stopped') OR m.attempt < excluded.attempt
"""


async def _save_final(
    conn: AsyncConnection,
    event: CompleteEvent | ErrorEvent,
    *,
    status: str,
    content: str,
    usage: Usage | None,
    error_code: str | None,
    error_message: str | None,
    model: str | None,
    provider: str | None,
    tool: str | None,
) -> None:
    await execute(
        conn,
        _SAVE_FINAL,
        *_assistant_ids(event),
        status,
        content,
        event.attempt,
        usage.model_dump_json() if usage is not None else None,
        error_code,
        error_message,
        model,
        provider,
        tool,
    )


_SAVE_TOOL_CALL = """
    INSERT INTO chat.tool_audit (call_id, message_id, session_id, org_id, user_id, tool, input,
                                 status, correlation_id)
    VALUES ($1, $2, $3, $4, $5, $6, $7::text::jsonb, 'running', $8)
    ON CONFLICT (call_id) DO NOTHING
"""


async def save_tool_call(conn: AsyncConnection, event: ToolCallEvent) -> None:
    await execute(
        conn,
        _SAVE_TOOL_CALL,
        *_tool_ids(event),
        event.correlation_id,
    )


def _tool_ids(event: ToolCallEvent | ToolResultEvent) -> tuple[Any, ...]:
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


_SAVE_TOOL_RESULT = """
    INSERT INTO chat.tool_audit (call_id, message_id, session_id, org_id, user_id, tool, input,
                                 output, status, latency_ms, correlation_id, completed_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7::text::jsonb, $8::text::jsonb, $9, $10, $11, now())
    ON CONFLICT (call_id) DO UPDATE SET
        output = excluded.output,
        status = excluded.status,
        latency_ms = excluded.latency_ms,
        completed_at = excluded.completed_at
"""


async def save_tool_result(conn: AsyncConnection, event: ToolResultEvent) -> None:
    await execute(
        conn,
        _SAVE_TOOL_RESULT,
        *_tool_ids(event),
        json.dumps(event.output),
        "error" if event.is_error else "ok",
        event.latency_ms,
        event.correlation_id,
    )


# A model call's row, created or updated by its id from a progress report or a final event. A
# final status (ok, error, stopped) is never changed again, and its usage is the exact one;
# `interrupted` replaces `streaming`, never the other way round; until the call is final its
# usage only grows (reports are cumulative; a late one must not lower it).
_RECORD_LLM_CALL = """
    INSERT INTO chat.llm_calls AS c (id, message_id, session_id, org_id, user_id, provider, model,
                                     input_tokens, output_tokens, cost_usd, ttft_ms, total_ms,
                                     status, error_code, correlation_id, attempt)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
    ON CONFLICT (id) DO UPDATE SET
        input_tokens = CASE WHEN excluded.status IN ('ok', 'error', 'stopped')
                        THEN excluded.input_tokens
                        ELSE greatest(c.input_tokens, excluded.input_tokens) END,
        output_tokens = CASE WHEN excluded.status IN ('ok', 'error', 'stopped')
                         THEN excluded.output_tokens
                         ELSE greatest(c.output_tokens, excluded.output_tokens) END,
        cost_usd = CASE WHEN excluded.status IN ('ok', 'error', 'stopped')
                    THEN excluded.cost_usd
                    ELSE greatest(c.cost_usd, excluded.cost_usd) END,
        total_ms = CASE WHEN excluded.status IN ('ok', 'error', 'stopped')
                    THEN excluded.total_ms
                    ELSE greatest(c.total_ms, excluded.total_ms) END,
        status = CASE WHEN excluded.status = 'streaming' THEN c.status ELSE excluded.status END,
        ttft_ms = coalesce(excluded.ttft_ms, c.ttft_ms),
        error_code = coalesce(excluded.error_code, c.error_code)
    WHERE c.status NOT IN ('ok', 'error', 'stopped')
"""


async def _record_llm_call(
    conn: AsyncConnection,
    event: CompleteEvent | ErrorEvent | ProgressEvent,
    call: LlmCall,
) -> None:
    await execute(
        conn,
        _RECORD_LLM_CALL,
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


_INTERRUPT_STREAMING_CALLS = """
    UPDATE chat.llm_calls SET status = 'interrupted'
     WHERE message_id = $1 AND status = 'streaming' AND ($2::integer IS NULL OR attempt <= $2)
"""


async def _interrupt_streaming_calls(
    conn: AsyncConnection, message_id: UUID, up_to_attempt: int | None = None
) -> None:
    """Calls of the answer still `streaming` will never report again: their worker is gone."""
    await execute(conn, _INTERRUPT_STREAMING_CALLS, message_id, up_to_attempt)


_LATER_ATTEMPT = """
    SELECT EXISTS (SELECT 1 FROM chat.llm_calls WHERE message_id = $1 AND attempt > $2)
"""
_RELEASE_HOLD = "DELETE FROM chat.budget_holds WHERE message_id = $1"


async def _answer_ended(conn: AsyncConnection, event: CompleteEvent | ErrorEvent) -> None:
    """What follows any final event: its call recorded, the calls its earlier attempts left
    streaming marked interrupted, the budget hold released and the session's turn freed.

    A later attempt may already be running (this final was late in history's queue); if it has
    reported a call, its calls, hold and turn are left to its own final event.
    """
    if event.llm_call is not None:
        await _record_llm_call(conn, event, event.llm_call)
    await _interrupt_streaming_calls(conn, event.message_id, event.attempt)
    if not await fetch_value(conn, _LATER_ATTEMPT, event.message_id, event.attempt):
        await execute(conn, _RELEASE_HOLD, event.message_id)
        await release_turn(conn, event.session_id, event.message_id)


async def save_complete(conn: AsyncConnection, event: CompleteEvent) -> None:
    await _save_final(
        conn,
        event,
        status=event.status,  # complete, or stopped (the text is what came until the stop)
        content=event.text,
        usage=event.usage,
        error_code=None,
        error_message=None,
        model=event.model,
        provider=event.provider,
        tool=event.tool,
    )
    await _answer_ended(conn, event)
    await touch_session(conn, event.session_id)


async def save_error(conn: AsyncConnection, event: ErrorEvent) -> None:
    call = event.llm_call
    await _save_final(
        conn,
        event,
        status="error",
        content=event.partial_text,
        usage=call.usage if call else None,
        error_code=event.code,
        error_message=event.message,
        model=call.model if call else None,
        provider=call.provider if call else None,
        tool=None,
    )
    await _answer_ended(conn, event)


_ENDED_ATTEMPT = """
    SELECT attempt FROM chat.messages WHERE id = $1 AND status IN ('complete', 'error', 'stopped')
"""


async def save_progress(conn: AsyncConnection, event: ProgressEvent) -> None:
    """A model call's usage so far (`streaming`) or its last usage (`interrupted`)."""
    call = event.llm_call
    if call.status == "streaming":
        ended_attempt = await fetch_value(conn, _ENDED_ATTEMPT, event.message_id)
        if ended_attempt is not None and ended_attempt >= event.attempt:
            # A report that arrives after its answer ended: that call will never finish.
            call = call.model_copy(update={"status": "interrupted"})
    # The call's row before the session's, as a final event locks them (`_answer_ended`):
    # the other order deadlocked with a final event of the same answer (docs/faults.md).
    await _record_llm_call(conn, event, call)
    if call.status == "streaming":
        await _keep_turn_alive(conn, event.session_id, event.message_id)


# -- budget --------------------------------------------------------------------------------


async def set_budget(conn: AsyncConnection, org_id: UUID, monthly_usd: Decimal) -> None:
    statement = insert(org_budgets).values(org_id=org_id, monthly_budget_usd=monthly_usd)
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=[org_budgets.c.org_id],
            set_={
                "monthly_budget_usd": statement.excluded.monthly_budget_usd,
                "updated_at": func.now(),
            },
        )
    )


# The hold's rules live in one function (migration 0005): lock the org's budget row (created
# with the default budget on the org's first call), sum the month's spend and the live holds,
# and hold `amount` if it fits.
_HOLD_BUDGET = "SELECT * FROM chat.hold_budget($1, $2, $3, $4, $5)"


def _budget_reply(row: Any, amount: Decimal) -> BudgetReply:
    allowed: bool = row["allowed"]
    held: Decimal = row["held_usd"]
    return BudgetReply(
        allowed=allowed,
        budget_usd=row["budget_usd"],
        spent_usd=row["spent_usd"],
        reserved_usd=held + (amount if allowed else 0),
    )


async def reserve_budget(
    conn: AsyncConnection,
    org_id: UUID,
    message_id: UUID,
    amount: Decimal,
    default_budget: Decimal,
    hold_ttl_seconds: int,
    *,
    interrupt_calls: bool = True,
) -> BudgetReply:
    """Hold `amount` for one call if the org's month still has room for it, in `conn`'s
    transaction.

    The org's budget row is locked for the rest of the transaction, so concurrent holds for one
    org are decided one after another and can never together exceed the budget.

    One hold per answer: a retried attempt reserving again replaces its answer's hold (and
    renews its age) rather than adding one. Spend is the month's model calls, except those
    still `streaming` under a live hold (the hold already counts them). Calls of the answer
    that are still `streaming` when it reserves again belong to an attempt whose worker is
    gone: they are marked `interrupted` and count as spent (`interrupt_calls=False`: the
    caller did that already).
    """
    if interrupt_calls:
        await _interrupt_streaming_calls(conn, message_id)
    row = await fetch_row(
        conn, _HOLD_BUDGET, org_id, message_id, amount, default_budget, float(hold_ttl_seconds)
    )
    return _budget_reply(row, amount)


async def hold_budget(
    engine: AsyncEngine,
    org_id: UUID,
    message_id: UUID,
    amount: Decimal,
    default_budget: Decimal,
    hold_ttl_seconds: int,
) -> BudgetReply:
    """`reserve_budget` as a transaction of its own, one statement (`StartAnswer`'s second
    step, whose claim already interrupted the answer's streaming calls).

    The statement runs without BEGIN and COMMIT from here: the org's budget row is locked only
    while PostgreSQL runs it, not for the round trips in between. Under load those round trips
    waited for this service's event loop while every other hold of the org waited for the lock
    (p50 39 ms, p95 237 ms of each `StartAnswer` at 100 sessions; docs/benchmarks.md).
    """
    row = await fetch_row_at_once(
        engine, _HOLD_BUDGET, org_id, message_id, amount, default_budget, float(hold_ttl_seconds)
    )
    return _budget_reply(row, amount)


# -- an answer's start ---------------------------------------------------------------------


async def claim_with_context(
    conn: AsyncConnection, request: StartAnswer
) -> tuple[TurnReply, list[ContextTurn]]:
    """`StartAnswer`'s first transaction: the session's turn and, once it is the answer's,
    the earlier turns."""
    # RabbitMQ delivers a request to one worker at a time: an attempt asking now means every
    # earlier attempt's worker is gone. Their calls first: llm_calls rows are locked before the
    # session's row, as final and progress events lock them (`save_progress`).
    await _interrupt_streaming_calls(conn, request.message_id)
    turn = await claim_turn(
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
    turns = await context_turns(
        conn,
        request.org_id,
        request.user_id,
        request.session_id,
        request.exclude_message_id,
        request.context_limit,
    )
    return turn, turns


def hold_for(request: StartAnswer, turns: list[ContextTurn]) -> Decimal:
    """The budget hold of the answer's call, with its earlier turns in the prompt."""
    hold = request.hold
    prompt_chars = hold.prompt_chars + sum(len(earlier.text) for earlier in turns)
    return max_cost(hold, prompt_chars, hold.max_tokens)
