"""One answer per session at a time: the turn is claimed, found busy, taken over when stale or
interrupted, and freed when the holder's final event is persisted (`StartAnswer`'s claim)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_contracts.base import LlmCall, Usage, UserRef
from chat_contracts.events import ErrorEvent, ProgressEvent
from chat_contracts.history import TurnReply
from chat_devtools.questions import a_question as _question
from chat_devtools.questions import a_user as _user
from chat_history.persisting import persist_event
from chat_history.store import budget, sessions, turns
from tests.support.history import open_a_session


async def _claim(
    engine: AsyncEngine,
    user: UserRef,
    session_id: UUID,
    message_id: UUID,
    *,
    interrupt: bool = False,
    stale_after: float = 300,
) -> TurnReply:
    async with engine.begin() as conn:
        return await turns.claim_turn(
            conn,
            user.org_id,
            user.user_id,
            session_id,
            message_id,
            interrupt=interrupt,
            stale_after_seconds=stale_after,
        )


async def _holder(engine: AsyncEngine, session_id: UUID) -> Any:
    async with engine.begin() as conn:
        return (
            await conn.execute(
                text("SELECT active_message_id, active_since FROM chat.sessions WHERE id = :s"),
                {"s": session_id},
            )
        ).one()


async def _age_the_turn(engine: AsyncEngine, session_id: UUID, seconds: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE chat.sessions SET active_since = now() - make_interval(secs => :age) "
                "WHERE id = :s"
            ),
            {"s": session_id, "age": seconds},
        )


async def test_a_free_turn_is_claimed_and_a_second_answer_finds_it_busy(
    engine: AsyncEngine,
) -> None:
    user = _user()
    session_id = await open_a_session(engine, user)
    first, second = uuid4(), uuid4()

    assert await _claim(engine, user, session_id, first) == TurnReply(status="claimed")
    assert await _claim(engine, user, session_id, second) == TurnReply(
        status="busy", holder_message_id=first
    )
    # A retried attempt of the holder claims its own turn again.
    assert await _claim(engine, user, session_id, first) == TurnReply(status="claimed")
    assert (await _holder(engine, session_id)).active_message_id == first


async def test_the_holders_final_event_frees_the_turn_and_no_other_does(
    engine: AsyncEngine,
) -> None:
    user = _user()
    session_id = await open_a_session(engine, user)
    message, routed, complete = _question(user, session_id)
    _, other_routed, other_complete = _question(user, session_id)
    async with engine.begin() as conn:
        await persist_event(conn, message, None)
        await persist_event(conn, routed, None)
    await _claim(engine, user, session_id, routed.message_id)

    async with engine.begin() as conn:
        await persist_event(conn, other_complete, None)  # not the holder's
    assert (await _holder(engine, session_id)).active_message_id == routed.message_id

    async with engine.begin() as conn:
        await persist_event(conn, complete, None)
    freed = await _holder(engine, session_id)
    assert freed.active_message_id is None and freed.active_since is None
    assert (await _claim(engine, user, session_id, other_routed.message_id)).status == "claimed"

    error = ErrorEvent(
        session_id=session_id,
        correlation_id=uuid4(),
        message_id=other_routed.message_id,
        seq=1,
        org_id=user.org_id,
        user_id=user.user_id,
        code="provider_error",
        message="The model failed.",
    )
    async with engine.begin() as conn:
        await persist_event(conn, error, None)
    assert (await _holder(engine, session_id)).active_message_id is None


async def test_a_stale_holder_is_taken_over_and_a_fresh_one_is_not(engine: AsyncEngine) -> None:
    user = _user()
    session_id = await open_a_session(engine, user)
    first, second = uuid4(), uuid4()
    await _claim(engine, user, session_id, first)
    await _age_the_turn(engine, session_id, 100)

    fresh_enough = await _claim(engine, user, session_id, second, stale_after=300)
    taken = await _claim(engine, user, session_id, second, stale_after=60)

    assert fresh_enough == TurnReply(status="busy", holder_message_id=first)
    assert taken == TurnReply(status="claimed", holder_message_id=first)
    held = await _holder(engine, session_id)
    assert held.active_message_id == second
    async with engine.begin() as conn:
        age = (await conn.execute(text("SELECT now() - :t"), {"t": held.active_since})).scalar()
    assert age.total_seconds() < 5


async def test_progress_of_the_holder_keeps_its_turn_from_going_stale(
    engine: AsyncEngine,
) -> None:
    user = _user()
    session_id = await open_a_session(engine, user)
    _, routed, _ = _question(user, session_id)
    await _claim(engine, user, session_id, routed.message_id)
    await _age_the_turn(engine, session_id, 100)
    progress = ProgressEvent(
        session_id=session_id,
        correlation_id=routed.correlation_id,
        message_id=routed.message_id,
        org_id=user.org_id,
        user_id=user.user_id,
        llm_call=LlmCall(
            call_id=uuid4(),
            provider="scripted",
            model="m",
            status="streaming",
            usage=Usage(input_tokens=5, output_tokens=7, cost_usd=Decimal("0.001")),
            ttft_ms=10.0,
            total_ms=2000.0,
        ),
    )
    async with engine.begin() as conn:
        await persist_event(conn, progress, None)

    reply = await _claim(engine, user, session_id, uuid4(), stale_after=60)
    assert reply == TurnReply(status="busy", holder_message_id=routed.message_id)


async def test_interrupt_takes_the_turn_and_names_the_answer_taken_over(
    engine: AsyncEngine,
) -> None:
    user = _user()
    session_id = await open_a_session(engine, user)
    _, routed, complete = _question(user, session_id)
    newer = uuid4()
    await _claim(engine, user, session_id, routed.message_id)

    reply = await _claim(engine, user, session_id, newer, interrupt=True)
    # The interrupted answer ends (stopped); its final event leaves the new holder's turn alone.
    async with engine.begin() as conn:
        await persist_event(conn, complete.model_copy(update={"status": "stopped"}), None)

    assert reply == TurnReply(status="claimed", holder_message_id=routed.message_id)
    assert (await _holder(engine, session_id)).active_message_id == newer
    # Interrupting a free turn takes over nobody.
    async with engine.begin() as conn:
        await turns.release_turn(conn, session_id, newer)
    assert await _claim(engine, user, session_id, uuid4(), interrupt=True) == TurnReply(
        status="claimed"
    )


async def test_concurrent_claims_give_the_turn_to_exactly_one(engine: AsyncEngine) -> None:
    user = _user()
    session_id = await open_a_session(engine, user)
    first, *others = [uuid4() for _ in range(6)]

    async def claim_and_linger() -> TurnReply:
        # The others' claims start while this one's transaction is still open.
        async with engine.begin() as conn:
            reply = await turns.claim_turn(
                conn,
                user.org_id,
                user.user_id,
                session_id,
                first,
                interrupt=False,
                stale_after_seconds=300,
            )
            await asyncio.sleep(0.3)
        return reply

    async def claim_meanwhile(message_id: UUID) -> TurnReply:
        await asyncio.sleep(0.1)
        return await _claim(engine, user, session_id, message_id)

    replies = await asyncio.gather(claim_and_linger(), *(claim_meanwhile(m) for m in others))

    assert replies[0] == TurnReply(status="claimed")
    assert replies[1:] == [TurnReply(status="busy", holder_message_id=first)] * len(others)
    assert (await _holder(engine, session_id)).active_message_id == first


async def test_a_claim_before_the_session_exists_creates_it_for_its_owner_only(
    engine: AsyncEngine,
) -> None:
    owner = _user()
    colleague = UserRef(user_id=uuid4(), org_id=owner.org_id, email="b@example.com", name="B")
    session_id, answer = uuid4(), uuid4()

    claimed = await _claim(engine, owner, session_id, answer)
    refused = await _claim(engine, colleague, session_id, uuid4(), interrupt=True)
    async with engine.begin() as conn:
        snapshot = await sessions.open_session(conn, owner.org_id, owner.user_id, session_id, 10)

    assert claimed == TurnReply(status="claimed")
    assert refused == TurnReply(status="busy", holder_message_id=None)
    assert snapshot.status == "ok" and snapshot.session_id == session_id
    assert (await _holder(engine, session_id)).active_message_id == answer


async def test_a_late_final_of_an_earlier_attempt_leaves_the_running_attempt_its_turn(
    engine: AsyncEngine,
) -> None:
    """Attempt 1's error was still in history's queue when attempt 2 took over and began to
    report its call: the error must not free attempt 2's turn nor drop its budget hold."""
    user = _user()
    session_id = await open_a_session(engine, user)
    _, routed, complete = _question(user, session_id)
    answer = routed.message_id
    await _claim(engine, user, session_id, answer)
    async with engine.begin() as conn:
        await budget.reserve_budget(
            conn, budget.Hold(user.org_id, answer, Decimal("0.1"), Decimal(5), 900)
        )
    report = ProgressEvent(
        session_id=session_id,
        correlation_id=routed.correlation_id,
        message_id=answer,
        org_id=user.org_id,
        user_id=user.user_id,
        attempt=2,
        llm_call=LlmCall(
            call_id=uuid4(),
            provider="scripted",
            model="m",
            status="streaming",
            usage=Usage(),
            ttft_ms=None,
            total_ms=100.0,
        ),
    )
    late_error = ErrorEvent(
        session_id=session_id,
        correlation_id=routed.correlation_id,
        message_id=answer,
        seq=1,
        attempt=1,
        org_id=user.org_id,
        user_id=user.user_id,
        code="worker_lost",
        message="The answer was cut off.",
    )
    holds = text("SELECT count(*) FROM chat.budget_holds WHERE message_id = :m")

    async with engine.begin() as conn:
        await persist_event(conn, report, None)
        await persist_event(conn, late_error, None)
        held_after_late_error = (await conn.execute(holds, {"m": answer})).scalar_one()
    turn_after_late_error = (await _holder(engine, session_id)).active_message_id
    async with engine.begin() as conn:
        await persist_event(conn, complete.model_copy(update={"attempt": 2}), None)
        held_after_answer = (await conn.execute(holds, {"m": answer})).scalar_one()

    assert (turn_after_late_error, held_after_late_error) == (answer, 1)
    assert (await _holder(engine, session_id)).active_message_id is None
    assert held_after_answer == 0
