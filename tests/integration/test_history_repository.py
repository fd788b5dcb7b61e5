"""The history service's writes are idempotent, reads are scoped, budget holds never overspend."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from uuid import UUID, uuid4

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_contracts.events import (
    ToolCallEvent,
    ToolResultEvent,
)
from chat_devtools.questions import a_question as _question
from chat_devtools.questions import a_user as _user
from chat_history.db import set_org
from chat_history.persisting import persist_event
from chat_history.store import budget, messages, sessions
from tests.support.history import open_a_session


async def test_redelivered_events_never_duplicate_rows(engine: AsyncEngine) -> None:
    user = _user()
    session_id = await open_a_session(engine, user)
    message, routed, complete = _question(user, session_id)
    call = ToolCallEvent(
        session_id=session_id,
        correlation_id=message.correlation_id,
        message_id=routed.message_id,
        seq=1,
        org_id=user.org_id,
        user_id=user.user_id,
        call_id=uuid4(),
        tool="who_am_i",
        input={},
    )
    result = ToolResultEvent(
        **{**call.model_dump(exclude={"type"}), "seq": 2},
        output={"name": "A"},
        is_error=False,
        latency_ms=1.0,
    )
    # Out of order and twice over: the answer before its routing, the result before its call.
    for _ in range(2):
        async with engine.begin() as conn:
            await persist_event(conn, complete, None)
            await persist_event(conn, routed, None)
            await persist_event(conn, message, None)
            await persist_event(conn, result, None)
            await persist_event(conn, call, None)

    async with engine.begin() as conn:
        history = await messages.session_messages(conn, user.org_id, user.user_id, session_id, 50)
        calls = await conn.exec_driver_sql("SELECT count(*) FROM chat.llm_calls")
    assert [(m.role, m.text, m.status) for m in history] == [
        ("user", "hello", "complete"),
        ("assistant", "hi there", "complete"),
    ]
    assert len(history[1].tool_calls) == 1 and history[1].tool_calls[0].output == {"name": "A"}
    assert calls.scalar_one() == 1


async def test_history_is_scoped_to_the_owner(engine: AsyncEngine) -> None:
    owner, stranger = _user(), _user()
    session_id = await open_a_session(engine, owner)
    async with engine.begin() as conn:
        for event in _question(owner, session_id)[:1]:
            await persist_event(conn, event, None)
        seen = await sessions.open_session(conn, stranger.org_id, stranger.user_id, session_id, 10)
        same_org = await sessions.open_session(conn, owner.org_id, stranger.user_id, session_id, 10)
        context = await messages.earlier_messages(
            conn, stranger.org_id, stranger.user_id, session_id, uuid4(), 10
        )
    assert seen.status == "forbidden" and seen.messages == []
    assert same_org.status == "forbidden"
    assert context == []


async def test_the_context_is_the_last_turns_in_conversation_order(engine: AsyncEngine) -> None:
    user = _user()
    session_id = await open_a_session(engine, user)
    base = 1_800_000_000.0
    turns = []
    for i in range(3):
        message, routed, complete = _question(user, session_id)
        turns.append(
            (
                message.model_copy(update={"text": f"Q{i}", "received_at": base + i}),
                routed.model_copy(update={"routed_at": base + i + 0.1}),
                complete.model_copy(update={"text": f"A{i}"}),
            )
        )
    async with engine.begin() as conn:
        for message, routed, complete in reversed(turns):  # the order comes from the times
            await persist_event(conn, complete, None)
            await persist_event(conn, routed, None)
            await persist_event(conn, message, None)

    async def context(limit: int, exclude: UUID) -> list[str]:
        async with engine.begin() as conn:
            found = await messages.earlier_messages(
                conn, user.org_id, user.user_id, session_id, exclude, limit
            )
        return [turn.text for turn in found]

    assert await context(10, uuid4()) == ["Q0", "A0", "Q1", "A1", "Q2", "A2"]
    assert await context(3, uuid4()) == ["A1", "Q2", "A2"]
    assert await context(10, turns[2][2].message_id) == ["Q0", "A0", "Q1", "A1", "Q2"]
    assert await context(0, uuid4()) == []


async def test_concurrent_budget_holds_never_exceed_the_budget(engine: AsyncEngine) -> None:
    org_id = uuid4()
    async with engine.begin() as conn:
        await budget.set_budget(conn, org_id, Decimal("1.00"))

    async def hold() -> bool:
        async with engine.begin() as conn:
            reply = await budget.reserve_budget(
                conn, budget.Hold(org_id, uuid4(), Decimal("0.30"), Decimal(0), 900)
            )
        return reply.allowed

    granted = await asyncio.gather(*(hold() for _ in range(10)))
    assert sum(granted) == 3  # 3 x $0.30 fits in $1.00; a fourth would not


async def test_one_statement_holds_never_exceed_the_budget_together(engine: AsyncEngine) -> None:
    """`hold_budget` (StartAnswer's path): each hold a statement of its own, all at once."""
    org_id = uuid4()
    async with engine.begin() as conn:
        await budget.set_budget(conn, org_id, Decimal("1.00"))

    replies = await asyncio.gather(
        *(
            budget.hold_budget(
                engine, budget.Hold(org_id, uuid4(), Decimal("0.30"), Decimal(0), 900)
            )
            for _ in range(10)
        )
    )

    assert sum(reply.allowed for reply in replies) == 3
    refused = [reply for reply in replies if not reply.allowed]
    assert all(reply.reserved_usd == Decimal("0.90") for reply in refused)
    async with engine.begin() as conn:
        await set_org(conn, org_id)
        held = (
            await conn.execute(
                text("SELECT count(*), sum(amount_usd) FROM chat.budget_holds WHERE org_id = :o"),
                {"o": org_id},
            )
        ).one()
    assert tuple(held) == (3, Decimal("0.90"))


async def test_a_one_statement_hold_commits_and_keeps_no_lock(engine: AsyncEngine) -> None:
    """The org's first call gets the default budget; once the hold returns it is committed and
    the budget row is free: a transaction that locks it does not wait."""
    org_id, answer = uuid4(), uuid4()

    reply = await budget.hold_budget(
        engine, budget.Hold(org_id, answer, Decimal("0.40"), Decimal(5), 900)
    )
    again = await budget.hold_budget(
        engine, budget.Hold(org_id, answer, Decimal("0.50"), Decimal(5), 900)
    )

    assert (
        reply.allowed and reply.budget_usd == Decimal(5) and reply.reserved_usd == Decimal("0.40")
    )
    # The same answer asking again replaces its hold instead of adding one.
    assert again.allowed and again.reserved_usd == Decimal("0.50")
    async with engine.begin() as conn:
        await set_org(conn, org_id)
        await conn.execute(text("SET LOCAL lock_timeout = '200ms'"))
        locked = await conn.execute(
            text("SELECT monthly_budget_usd FROM chat.org_budgets WHERE org_id = :o FOR UPDATE"),
            {"o": org_id},
        )
        assert locked.scalar_one() == Decimal(5)


async def test_a_zero_budget_allows_nothing_even_for_free_calls(engine: AsyncEngine) -> None:
    org_id = uuid4()
    async with engine.begin() as conn:
        await budget.set_budget(conn, org_id, Decimal(0))
        reply = await budget.reserve_budget(
            conn, budget.Hold(org_id, uuid4(), Decimal(0), Decimal(5), 900)
        )
    assert reply.allowed is False


async def test_spend_this_month_counts_against_the_budget(engine: AsyncEngine) -> None:
    user = _user()
    session_id = await open_a_session(engine, user)
    async with engine.begin() as conn:
        await budget.set_budget(conn, user.org_id, Decimal("0.015"))
        complete = _question(user, session_id)[2]
        await persist_event(conn, complete, None)  # spent $0.01
        small = await budget.reserve_budget(
            conn, budget.Hold(user.org_id, uuid4(), Decimal("0.004"), Decimal(0), 900)
        )
        large = await budget.reserve_budget(
            conn, budget.Hold(user.org_id, uuid4(), Decimal("0.004"), Decimal(0), 900)
        )
    assert small.allowed and small.spent_usd == Decimal("0.01")
    assert not large.allowed  # 0.01 spent + 0.004 held + 0.004 > 0.015


async def test_hop_times_arrive_in_any_order_and_the_timeline_is_only_the_owners(
    engine: AsyncEngine,
) -> None:
    from chat_contracts.base import HopTimes
    from chat_contracts.events import DeliveredEvent
    from chat_history.store import timings

    user = _user()
    session_id = await open_a_session(engine, user)
    message, routed, complete = _question(user, session_id)
    base = message.received_at
    complete = complete.model_copy(
        update={
            "emitted_at": base + 1.0,
            "hops": HopTimes(
                queued_at=base + 0.2,
                started_at=base + 0.3,
                model_called_at=base + 0.4,
                first_output_at=base + 0.5,
            ),
        }
    )

    def delivered(at: float) -> DeliveredEvent:
        return DeliveredEvent(
            session_id=session_id,
            correlation_id=message.correlation_id,
            message_id=routed.message_id,
            org_id=user.org_id,
            seq=1,
            delivered_at=at,
        )

    # Two gateway replicas report the delivery; everything arrives backwards, some twice.
    for event in (
        delivered(base + 0.6),
        complete,
        delivered(base + 0.55),
        routed,
        message,
        complete,
    ):
        async with engine.begin() as conn:
            await persist_event(conn, event, None)  # with its hop times

    async with engine.begin() as conn:
        reply = await timings.timeline(conn, user.org_id, user.user_id, routed.message_id)
        stranger = await timings.timeline(conn, user.org_id, uuid4(), routed.message_id)
    assert stranger.status == "not_found" and stranger.timeline is None
    assert reply.timeline is not None
    hops = {hop.name: hop.at for hop in reply.timeline.hops}
    assert hops["received"] == pytest.approx(base)
    assert hops["routed"] == pytest.approx(routed.routed_at)
    assert hops["first_output_delivered"] == pytest.approx(base + 0.55)  # the earliest
    assert hops["completed"] == pytest.approx(base + 1.0)
    assert "persisted" in hops
    assert reply.timeline.summary.time_to_first_token_ms == pytest.approx(100, abs=0.01)
