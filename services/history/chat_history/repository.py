"""Reads and idempotent writes of the chat tables.

Every write is keyed by an id that comes with the event (message id, call id), so a redelivered
event updates nothing twice and never duplicates a row. Every read is scoped to the org and user
that asked.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import and_, case, func, literal, not_, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import aliased

from chat_history.tables import (
    budget_holds,
    llm_calls,
    messages,
    org_budgets,
    sessions,
    tool_audit,
)
from chat_history.tables import excluded as excluded_row
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


async def touch_session(conn: AsyncConnection, session_id: UUID) -> None:
    await conn.execute(
        update(sessions)
        .where(sessions.c.id == session_id)
        .values(last_activity_at=func.greatest(sessions.c.last_activity_at, func.now()))
    )


async def end_idle_sessions(conn: AsyncConnection, idle_seconds: float) -> list[UUID]:
    """End every org's idle sessions (a SECURITY DEFINER function: the sweep is cross-org)."""
    result = await conn.execute(
        text("SELECT ended.id FROM chat.end_idle_sessions(:seconds) AS ended(id)"),
        {"seconds": idle_seconds},
    )
    return [row.id for row in result]


# -- the session's turn (issue 8: one answer streams per session at a time) -----------------

# One statement: the owned session row is locked by the sub-select, so concurrent claims are
# decided one after another, and `held` is the holder before this claim (RETURNING would give
# the new one).
_CLAIM = text(
    """
    UPDATE chat.sessions AS s
       SET active_message_id = :message_id, active_since = now()
      FROM (SELECT id, active_message_id, active_since FROM chat.sessions
             WHERE id = :session_id AND org_id = :org_id AND user_id = :user_id
               FOR UPDATE) AS held
     WHERE s.id = held.id
       AND (held.active_message_id IS NULL
            OR held.active_message_id = :message_id
            OR held.active_since < now() - make_interval(secs => :stale_after)
            OR :interrupt)
    RETURNING held.active_message_id AS previous
    """
)


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
    owner = {"session_id": session_id, "org_id": org_id, "user_id": user_id}
    claimed = (
        await conn.execute(
            _CLAIM,
            {
                **owner,
                "message_id": message_id,
                "stale_after": stale_after_seconds,
                "interrupt": interrupt,
            },
        )
    ).first()
    if claimed is not None:
        previous = claimed.previous
        return TurnReply(
            status="claimed",
            holder_message_id=previous if previous not in (None, message_id) else None,
        )
    # Still locked by the claim's sub-select: the holder read here is the one that refused it.
    holder = (
        await conn.execute(
            select(sessions.c.active_message_id).where(_owned_session(session_id, org_id, user_id))
        )
    ).first()
    if holder is not None:
        return TurnReply(status="busy", holder_message_id=holder.active_message_id)
    # No such session of this user. `open_session` normally creates it first; if the claim
    # came first, create it holding the turn. An id taken by another user or org (invisible
    # under row-level security, but still a conflict) creates and changes nothing.
    created = (
        await conn.execute(
            insert(sessions)
            .values(
                id=session_id,
                org_id=org_id,
                user_id=user_id,
                active_message_id=message_id,
                active_since=func.now(),
            )
            .on_conflict_do_nothing(index_elements=[sessions.c.id])
            .returning(sessions.c.id)
        )
    ).first()
    if created is not None:
        return TurnReply(status="claimed")
    log.warning("refused a turn claim for a session the asker does not own")
    return TurnReply(status="busy")


async def release_turn(conn: AsyncConnection, session_id: UUID, message_id: UUID) -> None:
    """Free the session's turn if `message_id` holds it (its answer has ended)."""
    await conn.execute(
        update(sessions)
        .where(sessions.c.id == session_id, sessions.c.active_message_id == message_id)
        .values(active_message_id=None, active_since=None)
    )


async def _keep_turn_alive(conn: AsyncConnection, session_id: UUID, message_id: UUID) -> None:
    """A progress report proves the holder's worker is alive: the turn is not stale."""
    await conn.execute(
        update(sessions)
        .where(sessions.c.id == session_id, sessions.c.active_message_id == message_id)
        .values(active_since=func.now())
    )


def _ordered(session_id: UUID) -> Any:
    """Messages of a session in conversation order: each answer right after its question."""
    parent = aliased(messages)
    return (
        select(messages)
        .outerjoin(parent, parent.c.id == messages.c.reply_to)
        .where(messages.c.session_id == session_id)
        .order_by(
            func.coalesce(parent.c.created_at, messages.c.created_at),
            case((messages.c.role == "user", literal(0)), else_=literal(1)),
            messages.c.created_at,
        )
    )


async def session_messages(
    conn: AsyncConnection, org_id: UUID, user_id: UUID, session_id: UUID, limit: int
) -> list[HistoryMessage]:
    query = _ordered(session_id).where(messages.c.org_id == org_id, messages.c.user_id == user_id)
    rows = (await conn.execute(query)).all()[-limit:]
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
    # A stopped answer is context too: the user saw it (and may ask to go on); not an empty one.
    seen = or_(
        messages.c.status == "complete",
        and_(messages.c.status == "stopped", messages.c.content != ""),
    )
    query = _ordered(session_id).where(
        messages.c.org_id == org_id,
        messages.c.user_id == user_id,
        seen,
        messages.c.id != exclude_message_id,
    )
    rows = (await conn.execute(query)).all()[-limit:] if limit > 0 else []
    return [ContextTurn(role=row.role, text=row.content) for row in rows]


# -- events --------------------------------------------------------------------------------


async def save_user_message(conn: AsyncConnection, event: UserMessage) -> None:
    await conn.execute(
        insert(messages)
        .values(
            id=event.message_id,
            session_id=event.session_id,
            org_id=event.user.org_id,
            user_id=event.user.user_id,
            role="user",
            content=event.text,
            status="complete",
            correlation_id=event.correlation_id,
            created_at=_ts(event.received_at),
            completed_at=_ts(event.received_at),
        )
        .on_conflict_do_nothing(index_elements=[messages.c.id])
    )
    await touch_session(conn, event.session_id)


def _assistant_row(event: RoutedEvent | CompleteEvent | ErrorEvent) -> dict[str, Any]:
    return {
        "id": event.message_id,
        "session_id": event.session_id,
        "org_id": event.org_id,
        "user_id": event.user_id,
        "role": "assistant",
        "correlation_id": event.correlation_id,
    }


async def _upsert_assistant(conn: AsyncConnection, event: RoutedEvent, **values: Any) -> None:
    """Create or update an assistant message; a terminal status is never overwritten."""
    statement = insert(messages).values(**_assistant_row(event), **values)
    excluded = excluded_row(messages)
    is_terminal = messages.c.status.in_(TERMINAL)
    changes: dict[str, Any] = {
        key: func.coalesce(excluded[key], messages.c[key])
        for key in values
        if key not in ("status", "created_at")
    }
    changes["status"] = case((is_terminal, messages.c.status), else_=excluded.status)
    await conn.execute(
        statement.on_conflict_do_update(index_elements=[messages.c.id], set_=changes)
    )


# What an answer's final event decides outright, and what it only fills in if it has it
# (the routing may have said already).
_FINAL_COLUMNS = (
    "status",
    "content",
    "attempt",
    "usage",
    "error_code",
    "error_message",
    "completed_at",
)
_DESCRIPTIVE_COLUMNS = ("model", "provider", "tool")


async def _save_final(
    conn: AsyncConnection, event: CompleteEvent | ErrorEvent, **values: Any
) -> None:
    """Store an answer's final status and text, unless a final one already stands.

    A final event wins over a pending message, and over the final of a lower attempt (attempt
    1's worker failed, attempt 2 answered); a redelivered final of the same attempt, or a late
    one of a lower attempt, changes nothing.
    """
    statement = insert(messages).values(**_assistant_row(event), attempt=event.attempt, **values)
    excluded = excluded_row(messages)
    wins = or_(messages.c.status.not_in(TERMINAL), messages.c.attempt < excluded.attempt)
    changes: dict[str, Any] = {}
    for key in (*_FINAL_COLUMNS, *_DESCRIPTIVE_COLUMNS):
        if key != "attempt" and key not in values:
            continue
        won: Any = excluded[key]
        if key in _DESCRIPTIVE_COLUMNS:
            won = func.coalesce(won, messages.c[key])
        changes[key] = case((wins, won), else_=messages.c[key])
    await conn.execute(
        statement.on_conflict_do_update(index_elements=[messages.c.id], set_=changes)
    )


async def save_routed(conn: AsyncConnection, event: RoutedEvent) -> None:
    await _upsert_assistant(
        conn,
        event,
        status="pending",
        reply_to=event.user_message_id,
        tier=event.tier,
        tool=event.tool,
    )


async def save_tool_call(conn: AsyncConnection, event: ToolCallEvent) -> None:
    await conn.execute(
        insert(tool_audit)
        .values(
            call_id=event.call_id,
            message_id=event.message_id,
            session_id=event.session_id,
            org_id=event.org_id,
            user_id=event.user_id,
            tool=event.tool,
            input=event.input,
            status="running",
            correlation_id=event.correlation_id,
        )
        .on_conflict_do_nothing(index_elements=[tool_audit.c.call_id])
    )


async def save_tool_result(conn: AsyncConnection, event: ToolResultEvent) -> None:
    statement = insert(tool_audit).values(
        call_id=event.call_id,
        message_id=event.message_id,
        session_id=event.session_id,
        org_id=event.org_id,
        user_id=event.user_id,
        tool=event.tool,
        input=event.input,
        output=event.output,
        status="error" if event.is_error else "ok",
        latency_ms=event.latency_ms,
        correlation_id=event.correlation_id,
        completed_at=func.now(),
    )
    excluded = excluded_row(tool_audit)
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=[tool_audit.c.call_id],
            set_={
                "output": excluded.output,
                "status": excluded.status,
                "latency_ms": excluded.latency_ms,
                "completed_at": excluded.completed_at,
            },
        )
    )


async def _record_llm_call(
    conn: AsyncConnection,
    event: CompleteEvent | ErrorEvent | ProgressEvent,
    call: LlmCall,
) -> None:
    """Create or update a model call's row by its id, from a progress report or a final event.

    A final status (ok, error, stopped) is never changed again, and its usage is the exact one;
    `interrupted` replaces `streaming`, never the other way round; until the call is final its
    usage only grows (reports are cumulative; a late one must not lower it).
    """
    statement = insert(llm_calls).values(
        id=call.call_id,
        message_id=event.message_id,
        session_id=event.session_id,
        org_id=event.org_id,
        user_id=event.user_id,
        provider=call.provider,
        model=call.model,
        input_tokens=call.usage.input_tokens,
        output_tokens=call.usage.output_tokens,
        cost_usd=call.usage.cost_usd,
        ttft_ms=call.ttft_ms,
        total_ms=call.total_ms,
        status=call.status,
        error_code=call.error_code,
        correlation_id=event.correlation_id,
        attempt=event.attempt,
    )
    excluded = excluded_row(llm_calls)
    reports_final = excluded.status.in_(FINAL_CALL)
    changes: dict[str, Any] = {
        key: case(
            (reports_final, excluded[key]), else_=func.greatest(llm_calls.c[key], excluded[key])
        )
        for key in ("input_tokens", "output_tokens", "cost_usd", "total_ms")
    }
    changes["status"] = case(
        (excluded.status == "streaming", llm_calls.c.status), else_=excluded.status
    )
    changes["ttft_ms"] = func.coalesce(excluded.ttft_ms, llm_calls.c.ttft_ms)
    changes["error_code"] = func.coalesce(excluded.error_code, llm_calls.c.error_code)
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=[llm_calls.c.id],
            set_=changes,
            where=llm_calls.c.status.not_in(FINAL_CALL),
        )
    )


async def _interrupt_streaming_calls(
    conn: AsyncConnection, message_id: UUID, up_to_attempt: int | None = None
) -> None:
    """Calls of the answer still `streaming` will never report again: their worker is gone."""
    condition = and_(llm_calls.c.message_id == message_id, llm_calls.c.status == "streaming")
    if up_to_attempt is not None:
        condition = and_(condition, llm_calls.c.attempt <= up_to_attempt)
    await conn.execute(update(llm_calls).where(condition).values(status="interrupted"))


async def _release_hold(conn: AsyncConnection, message_id: UUID) -> None:
    await conn.execute(budget_holds.delete().where(budget_holds.c.message_id == message_id))


async def _answer_ended(conn: AsyncConnection, event: CompleteEvent | ErrorEvent) -> None:
    """What follows any final event: its call recorded, the calls its earlier attempts left
    streaming marked interrupted, the budget hold released and the session's turn freed.

    A later attempt may already be running (this final was late in history's queue); if it has
    reported a call, its calls, hold and turn are left to its own final event.
    """
    if event.llm_call is not None:
        await _record_llm_call(conn, event, event.llm_call)
    await _interrupt_streaming_calls(conn, event.message_id, event.attempt)
    later_attempt = (
        await conn.execute(
            select(
                select(llm_calls.c.id)
                .where(
                    llm_calls.c.message_id == event.message_id,
                    llm_calls.c.attempt > event.attempt,
                )
                .exists()
            )
        )
    ).scalar_one()
    if not later_attempt:
        await _release_hold(conn, event.message_id)
        await release_turn(conn, event.session_id, event.message_id)


async def save_complete(conn: AsyncConnection, event: CompleteEvent) -> None:
    await _save_final(
        conn,
        event,
        status=event.status,  # complete, or stopped (the text is what came until the stop)
        content=event.text,
        model=event.model,
        provider=event.provider,
        tool=event.tool,
        usage=event.usage.model_dump(mode="json") if event.usage else None,
        error_code=None,
        error_message=None,
        completed_at=func.now(),
    )
    await _answer_ended(conn, event)
    await touch_session(conn, event.session_id)


async def save_error(conn: AsyncConnection, event: ErrorEvent) -> None:
    await _save_final(
        conn,
        event,
        status="error",
        content=event.partial_text,
        error_code=event.code,
        error_message=event.message,
        model=event.llm_call.model if event.llm_call else None,
        provider=event.llm_call.provider if event.llm_call else None,
        usage=event.llm_call.usage.model_dump(mode="json") if event.llm_call else None,
        completed_at=func.now(),
    )
    await _answer_ended(conn, event)


async def save_progress(conn: AsyncConnection, event: ProgressEvent) -> None:
    """A model call's usage so far (`streaming`) or its last usage (`interrupted`)."""
    call = event.llm_call
    if call.status == "streaming":
        ended_attempt = (
            await conn.execute(
                select(messages.c.attempt).where(
                    messages.c.id == event.message_id, messages.c.status.in_(TERMINAL)
                )
            )
        ).scalar_one_or_none()
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
                "monthly_budget_usd": excluded_row(org_budgets).monthly_budget_usd,
                "updated_at": func.now(),
            },
        )
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
    """Hold `amount` for one call if the org's month still has room for it.

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
    budget_row = (
        select(org_budgets.c.monthly_budget_usd)
        .where(org_budgets.c.org_id == org_id)
        .with_for_update()
    )
    budget: Decimal | None = (await conn.execute(budget_row)).scalar_one_or_none()
    if budget is None:  # the org's first call: its budget is the default
        await conn.execute(
            insert(org_budgets)
            .values(org_id=org_id, monthly_budget_usd=default_budget)
            .on_conflict_do_nothing(index_elements=[org_budgets.c.org_id])
        )
        budget = (await conn.execute(budget_row)).scalar_one()
    month_start = func.date_trunc("month", func.now())
    hold_is_live = budget_holds.c.created_at > func.now() - func.make_interval(
        0, 0, 0, 0, 0, 0, hold_ttl_seconds
    )
    covered_by_a_hold = and_(
        llm_calls.c.status == "streaming",
        select(budget_holds.c.message_id)
        .where(budget_holds.c.message_id == llm_calls.c.message_id, hold_is_live)
        .exists(),
    )
    spent_so_far = (
        select(func.coalesce(func.sum(llm_calls.c.cost_usd), 0))
        .where(
            llm_calls.c.org_id == org_id,
            llm_calls.c.created_at >= month_start,
            not_(covered_by_a_hold),
        )
        .scalar_subquery()
    )
    held_by_others = (
        select(func.coalesce(func.sum(budget_holds.c.amount_usd), 0))
        .where(
            budget_holds.c.org_id == org_id,
            budget_holds.c.message_id != message_id,
            hold_is_live,
        )
        .scalar_subquery()
    )
    totals = (
        await conn.execute(select(spent_so_far.label("spent"), held_by_others.label("held")))
    ).one()
    spent: Decimal = totals.spent
    held: Decimal = totals.held
    allowed = budget > 0 and spent + held + amount <= budget
    if allowed:
        statement = insert(budget_holds).values(
            message_id=message_id, org_id=org_id, amount_usd=amount
        )
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=[budget_holds.c.message_id],
                set_={
                    "amount_usd": excluded_row(budget_holds).amount_usd,
                    "created_at": func.now(),
                },
            )
        )
    return BudgetReply(
        allowed=allowed,
        budget_usd=budget,
        spent_usd=spent,
        reserved_usd=held + (amount if allowed else 0),
    )


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
