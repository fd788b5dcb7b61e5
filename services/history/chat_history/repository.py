"""Reads and idempotent writes of the chat tables.

Every write is keyed by an id that comes with the event (message id, call id), so a redelivered
event updates nothing twice and never duplicates a row. Every read is scoped to the org and user
that asked.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import and_, case, func, literal, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import aliased

from chat_history.tables import budget_holds, llm_calls, messages, org_budgets, sessions, tool_audit
from chat_shared.contracts import (
    BudgetReply,
    CompleteEvent,
    ContextTurn,
    ErrorEvent,
    HistoryMessage,
    HistoryToolCall,
    LlmCall,
    RoutedEvent,
    SessionSnapshot,
    ToolCallEvent,
    ToolResultEvent,
    UserMessage,
)

TERMINAL = ("complete", "error", "stopped")


def _ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


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
            select(sessions.c.ended_at).where(
                sessions.c.id == session_id,
                sessions.c.org_id == org_id,
                sessions.c.user_id == user_id,
            )
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
    query = _ordered(session_id).where(
        messages.c.org_id == org_id,
        messages.c.user_id == user_id,
        messages.c.status == "complete",
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


async def _upsert_assistant(
    conn: AsyncConnection, event: RoutedEvent | CompleteEvent | ErrorEvent, **values: Any
) -> None:
    """Create or update an assistant message; a terminal status is never overwritten."""
    row = {
        "id": event.message_id,
        "session_id": event.session_id,
        "org_id": event.org_id,
        "user_id": event.user_id,
        "role": "assistant",
        "correlation_id": event.correlation_id,
        **values,
    }
    statement = insert(messages).values(**row)
    excluded = statement.excluded
    is_terminal = messages.c.status.in_(TERMINAL)
    changes: dict[str, Any] = {
        key: func.coalesce(excluded[key], messages.c[key])
        for key in values
        if key not in ("status", "content", "created_at")
    }
    if "status" in values:
        changes["status"] = case((is_terminal, messages.c.status), else_=excluded.status)
    if "content" in values:
        changes["content"] = case((is_terminal, messages.c.content), else_=excluded.content)
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
    excluded = statement.excluded
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


async def _save_llm_call(
    conn: AsyncConnection, event: CompleteEvent | ErrorEvent, call: LlmCall
) -> None:
    await conn.execute(
        insert(llm_calls)
        .values(
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
        )
        .on_conflict_do_nothing(index_elements=[llm_calls.c.id])
    )


async def _release_hold(conn: AsyncConnection, message_id: UUID) -> None:
    await conn.execute(budget_holds.delete().where(budget_holds.c.message_id == message_id))


async def save_complete(conn: AsyncConnection, event: CompleteEvent) -> None:
    await _upsert_assistant(
        conn,
        event,
        status="complete",
        content=event.text,
        model=event.model,
        provider=event.provider,
        tool=event.tool,
        usage=event.usage.model_dump(mode="json") if event.usage else None,
        completed_at=func.now(),
    )
    if event.llm_call is not None:
        await _save_llm_call(conn, event, event.llm_call)
    await _release_hold(conn, event.message_id)
    await touch_session(conn, event.session_id)


async def save_error(conn: AsyncConnection, event: ErrorEvent) -> None:
    await _upsert_assistant(
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
    if event.llm_call is not None:
        await _save_llm_call(conn, event, event.llm_call)
    await _release_hold(conn, event.message_id)


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


async def reserve_budget(
    conn: AsyncConnection,
    org_id: UUID,
    message_id: UUID,
    amount: Decimal,
    default_budget: Decimal,
    hold_ttl_seconds: int,
) -> BudgetReply:
    """Hold `amount` for one call if the org's month still has room for it.

    The org's budget row is locked for the rest of the transaction, so concurrent holds for one
    org are decided one after another and can never together exceed the budget.
    """
    await conn.execute(
        insert(org_budgets)
        .values(org_id=org_id, monthly_budget_usd=default_budget)
        .on_conflict_do_nothing(index_elements=[org_budgets.c.org_id])
    )
    budget: Decimal = (
        await conn.execute(
            select(org_budgets.c.monthly_budget_usd)
            .where(org_budgets.c.org_id == org_id)
            .with_for_update()
        )
    ).scalar_one()
    month_start = func.date_trunc("month", func.now())
    spent: Decimal = (
        await conn.execute(
            select(func.coalesce(func.sum(llm_calls.c.cost_usd), 0)).where(
                llm_calls.c.org_id == org_id, llm_calls.c.created_at >= month_start
            )
        )
    ).scalar_one()
    held: Decimal = (
        await conn.execute(
            select(func.coalesce(func.sum(budget_holds.c.amount_usd), 0)).where(
                and_(
                    budget_holds.c.org_id == org_id,
                    budget_holds.c.message_id != message_id,
                    budget_holds.c.created_at
                    > func.now() - func.make_interval(0, 0, 0, 0, 0, 0, hold_ttl_seconds),
                )
            )
        )
    ).scalar_one()
    allowed = budget > 0 and spent + held + amount <= budget
    if allowed:
        statement = insert(budget_holds).values(
            message_id=message_id, org_id=org_id, amount_usd=amount
        )
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=[budget_holds.c.message_id],
                set_={"amount_usd": statement.excluded.amount_usd},
            )
        )
    return BudgetReply(
        allowed=allowed,
        budget_usd=budget,
        spent_usd=spent,
        reserved_usd=held + (amount if allowed else 0),
    )
