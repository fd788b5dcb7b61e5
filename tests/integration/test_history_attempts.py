"""Answers that were stopped, retried or cut off: which final event stands, what the model
calls record, and what the budget counts."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_contracts.base import CallStatus, LlmCall, Usage, UserRef
from chat_contracts.events import CompleteEvent, ErrorEvent, ProgressEvent, RoutedEvent
from chat_devtools.questions import a_question as _question
from chat_devtools.questions import a_user as _user
from chat_history.persisting import persist_event
from chat_history.store import budget, messages
from tests.support.history import open_a_session


def _call(
    call_id: UUID, status: CallStatus, output_tokens: int, cost: str, total_ms: float = 100.0
) -> LlmCall:
    return LlmCall(
        call_id=call_id,
        provider="scripted",
        model="m",
        status=status,
        usage=Usage(input_tokens=10, output_tokens=output_tokens, cost_usd=Decimal(cost)),
        ttft_ms=5.0,
        total_ms=total_ms,
    )


def _progress(routed: RoutedEvent, call: LlmCall, attempt: int = 1) -> ProgressEvent:
    return ProgressEvent(
        session_id=routed.session_id,
        correlation_id=routed.correlation_id,
        message_id=routed.message_id,
        org_id=routed.org_id,
        user_id=routed.user_id,
        attempt=attempt,
        llm_call=call,
    )


def _error(routed: RoutedEvent, attempt: int, call: LlmCall | None = None) -> ErrorEvent:
    return ErrorEvent(
        session_id=routed.session_id,
        correlation_id=routed.correlation_id,
        message_id=routed.message_id,
        seq=2,
        attempt=attempt,
        org_id=routed.org_id,
        user_id=routed.user_id,
        code="provider_error",
        message="The model failed.",
        partial_text="hal",
        llm_call=call,
    )


async def _started(engine: AsyncEngine, user: UserRef) -> tuple[RoutedEvent, CompleteEvent]:
    session_id = await open_a_session(engine, user)
    message, routed, complete = _question(user, session_id)
    async with engine.begin() as conn:
        await persist_event(conn, message, None)
        await persist_event(conn, routed, None)
    return routed, complete


async def _persist(
    engine: AsyncEngine, *events: CompleteEvent | ErrorEvent | ProgressEvent
) -> None:
    for event in events:
        async with engine.begin() as conn:
            await persist_event(conn, event, None)


async def _message(engine: AsyncEngine, message_id: UUID) -> Any:
    async with engine.begin() as conn:
        return (
            await conn.execute(
                text(
                    "SELECT status, content, attempt, error_code, usage "
                    "FROM chat.messages WHERE id = :m"
                ),
                {"m": message_id},
            )
        ).one()


async def _calls(engine: AsyncEngine, message_id: UUID) -> dict[UUID, Any]:
    async with engine.begin() as conn:
        rows = await conn.execute(
            text(
                "SELECT id, status, output_tokens, cost_usd, total_ms, attempt "
                "FROM chat.llm_calls WHERE message_id = :m"
            ),
            {"m": message_id},
        )
        return {row.id: row for row in rows}


async def test_a_stopped_answer_keeps_its_partial_text_and_its_real_usage(
    engine: AsyncEngine,
) -> None:
    user = _user()
    routed, complete = await _started(engine, user)
    call = _call(uuid4(), "stopped", 40, "0.02")
    stopped = complete.model_copy(
        update={"status": "stopped", "text": "Once upon a", "llm_call": call, "usage": call.usage}
    )
    await _persist(engine, stopped)
    async with engine.begin() as conn:
        held = await budget.reserve_budget(
            conn, budget.Hold(user.org_id, uuid4(), Decimal("0.01"), Decimal(5), 900)
        )

    row = await _message(engine, routed.message_id)
    assert (row.status, row.content) == ("stopped", "Once upon a")
    assert row.usage["output_tokens"] == 40
    calls = await _calls(engine, routed.message_id)
    assert (calls[call.call_id].status, calls[call.call_id].cost_usd) == (
        "stopped",
        Decimal("0.02"),
    )
    assert held.spent_usd == Decimal("0.02")  # a stopped call is paid for like any other


@pytest.mark.parametrize(
    ("finals", "stands"),
    [
        # Attempt 1's worker failed, attempt 2 answered: the answer is complete.
        ((("error", 1), ("complete", 2)), ("complete", "hi there", 2, None)),
        # Attempt 1's error arrives late: it changes nothing.
        ((("complete", 2), ("error", 1)), ("complete", "hi there", 2, None)),
        ((("error", 2), ("complete", 1)), ("error", "hal", 2, "provider_error")),
        # Within one attempt the first final event stands (redeliveries, a stray error).
        ((("complete", 1), ("error", 1), ("complete", 1)), ("complete", "hi there", 1, None)),
    ],
)
async def test_a_higher_attempts_final_event_stands_whatever_the_order(
    engine: AsyncEngine,
    finals: tuple[tuple[str, int], ...],
    stands: tuple[str, str, int, str | None],
) -> None:
    routed, complete = await _started(engine, _user())

    await _persist(
        engine,
        *(
            complete.model_copy(update={"attempt": attempt})
            if kind == "complete"
            else _error(routed, attempt)
            for kind, attempt in finals
        ),
    )

    row = await _message(engine, routed.message_id)
    assert (row.status, row.content, row.attempt, row.error_code) == stands


async def test_progress_reports_grow_a_calls_usage_until_its_final_one(
    engine: AsyncEngine,
) -> None:
    routed, complete = await _started(engine, _user())
    call_id = uuid4()
    final = _call(call_id, "ok", 30, "0.03", total_ms=3000.0)

    await _persist(engine, _progress(routed, _call(call_id, "streaming", 20, "0.02", 2000.0)))
    after_report = (await _calls(engine, routed.message_id))[call_id]
    # A report redelivered late (smaller) does not lower what is recorded.
    await _persist(engine, _progress(routed, _call(call_id, "streaming", 10, "0.01", 1000.0)))
    after_late_report = (await _calls(engine, routed.message_id))[call_id]
    await _persist(engine, complete.model_copy(update={"llm_call": final}))
    await _persist(engine, _progress(routed, _call(call_id, "streaming", 50, "0.05")))
    after_final = (await _calls(engine, routed.message_id))[call_id]

    assert (after_report.status, after_report.output_tokens) == ("streaming", 20)
    assert (after_late_report.output_tokens, after_late_report.total_ms) == (20, 2000.0)
    assert (after_final.status, after_final.output_tokens, after_final.cost_usd) == (
        "ok",
        30,
        Decimal("0.03"),
    )


async def test_interrupted_replaces_streaming_and_never_the_reverse(engine: AsyncEngine) -> None:
    routed, _ = await _started(engine, _user())
    call_id = uuid4()

    await _persist(
        engine,
        _progress(routed, _call(call_id, "streaming", 20, "0.02")),
        _progress(routed, _call(call_id, "interrupted", 25, "0.025")),
        _progress(routed, _call(call_id, "streaming", 22, "0.022")),
    )

    row = (await _calls(engine, routed.message_id))[call_id]
    assert (row.status, row.output_tokens, row.cost_usd) == ("interrupted", 25, Decimal("0.025"))


async def test_the_answers_final_event_marks_calls_left_streaming_interrupted(
    engine: AsyncEngine,
) -> None:
    """Attempt 1's worker was killed mid-stream (its last report says `streaming`); attempt 2
    answered. A third attempt's call, still streaming when attempt 1's late error arrives, is
    left alone."""
    routed, complete = await _started(engine, _user())
    killed, answered = uuid4(), uuid4()

    await _persist(
        engine,
        _progress(routed, _call(killed, "streaming", 20, "0.02"), attempt=1),
        complete.model_copy(update={"attempt": 2, "llm_call": _call(answered, "ok", 30, "0.03")}),
    )
    calls = await _calls(engine, routed.message_id)

    assert (calls[killed].status, calls[killed].attempt) == ("interrupted", 1)
    assert (calls[answered].status, calls[answered].attempt) == ("ok", 2)

    other, _ = await _started(engine, _user())
    streaming = uuid4()
    await _persist(
        engine,
        _progress(other, _call(streaming, "streaming", 5, "0.005"), attempt=2),
        _error(other, attempt=1),
    )
    assert (await _calls(engine, other.message_id))[streaming].status == "streaming"


async def test_a_report_arriving_after_its_answer_ended_is_recorded_interrupted(
    engine: AsyncEngine,
) -> None:
    routed, complete = await _started(engine, _user())
    straggler = uuid4()

    await _persist(engine, complete, _progress(routed, _call(straggler, "streaming", 3, "0.003")))

    assert (await _calls(engine, routed.message_id))[straggler].status == "interrupted"


async def test_budget_counts_a_streaming_call_once_and_a_retry_holds_once(
    engine: AsyncEngine,
) -> None:
    user = _user()
    routed, complete = await _started(engine, user)
    other = uuid4()
    async with engine.begin() as conn:
        await budget.set_budget(conn, user.org_id, Decimal("1.00"))

    async def reserve(message_id: UUID, amount: str) -> Any:
        async with engine.begin() as conn:
            return await budget.reserve_budget(
                conn, budget.Hold(user.org_id, message_id, Decimal(amount), Decimal(0), 900)
            )

    first_hold = await reserve(routed.message_id, "0.50")
    # The answer's call has streamed $0.30 so far: its hold ($0.50) already covers that.
    await _persist(engine, _progress(routed, _call(uuid4(), "streaming", 300, "0.30")))
    beside_it = await reserve(other, "0.50")
    # Its worker died; attempt 2 reserves for the same answer: one hold, replaced, and the
    # cut-off call's $0.30 is now spent money.
    retry = await reserve(routed.message_id, "0.20")
    calls = await _calls(engine, routed.message_id)
    await _persist(
        engine,
        complete.model_copy(update={"attempt": 2, "llm_call": _call(uuid4(), "ok", 100, "0.10")}),
    )
    after = await reserve(uuid4(), "0.01")

    assert first_hold.allowed and beside_it.allowed
    assert beside_it.spent_usd == 0 and beside_it.reserved_usd == Decimal("1.00")
    assert retry.allowed and retry.spent_usd == Decimal("0.30")
    assert retry.reserved_usd == Decimal("0.70")  # 0.50 (other) + 0.20 (the retry's only hold)
    assert [row.status for row in calls.values()] == ["interrupted"]
    # The answer ended: its hold is gone, both of its calls are spent.
    assert after.spent_usd == Decimal("0.40") and after.reserved_usd == Decimal("0.51")


async def test_a_stopped_answer_is_context_for_the_next_turn_unless_it_is_empty(
    engine: AsyncEngine,
) -> None:
    user = _user()
    routed, complete = await _started(engine, user)
    await _persist(engine, complete.model_copy(update={"status": "stopped", "text": "Once"}))
    _, second_routed, second = _question(user, routed.session_id)
    async with engine.begin() as conn:
        await persist_event(conn, second_routed, None)
    await _persist(engine, second.model_copy(update={"status": "stopped", "text": ""}))

    async with engine.begin() as conn:
        turns = await messages.earlier_messages(
            conn, user.org_id, user.user_id, routed.session_id, uuid4(), 10
        )

    assert [(turn.role, turn.text) for turn in turns] == [("user", "hello"), ("assistant", "Once")]
