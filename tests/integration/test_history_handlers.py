"""The history service's handlers on real RabbitMQ and the services' database role: turn
claims answered over request/reply, progress and stopped answers persisted from the events
queue."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest
from faststream.rabbit import RabbitBroker
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from chat_contracts.base import LlmCall, Usage
from chat_contracts.events import CompleteEvent, ProgressEvent, RetryingEvent
from chat_contracts.history import (
    HoldPrice,
    OpenSession,
    SessionSnapshot,
    StartAnswer,
    StartReply,
    TurnReply,
)
from chat_contracts.topology import Topology
from chat_devtools.infra import delete_topology, unique_prefix
from chat_history.answers import AnswerStarts
from chat_history.handlers import register
from chat_history.persisting import persist_event
from chat_history.questions import Questions
from chat_history.settings import HistorySettings
from chat_history.writer import EventWriter
from chat_runtime.declare import declare_topology_at
from chat_runtime.pricing import max_cost
from chat_runtime.publisher import Publisher
from chat_runtime.wire import Wire
from tests.support.db import drop_connections


@pytest.fixture
async def service(amqp_url: str, app_database_url: str) -> AsyncIterator[dict[str, Any]]:
    prefix = unique_prefix()
    settings = HistorySettings(
        amqp_url=amqp_url, broker_prefix=prefix, database_url=app_database_url
    )
    topology = Topology(prefix)
    await declare_topology_at(amqp_url, topology)
    engine = create_async_engine(app_database_url)
    broker = RabbitBroker(amqp_url)
    writer = EventWriter(engine, persist_event, max_batch=settings.history_prefetch)
    register(broker, settings, writer, Questions(engine, AnswerStarts(engine, settings, writer)))
    # The events these tests publish are the LLM worker's.
    worker = Publisher(broker, Wire(topology, "llm-worker"))
    async with broker:
        await broker.start()
        yield {"broker": broker, "topology": topology, "worker": worker}
    await engine.dispose()
    await delete_topology(amqp_url, prefix)


async def _ask(service: dict[str, Any], request: BaseModel) -> bytes:
    reply = await service["broker"].request(
        request.model_dump_json().encode(),
        queue=service["topology"].history_rpc.name,
        timeout=5,
    )
    body: bytes = reply.body
    return body


async def _open(service: dict[str, Any], **fields: Any) -> SessionSnapshot:
    """Open (or restore, with `session_id`) a session through the service."""
    return SessionSnapshot.model_validate_json(await _ask(service, OpenSession(**fields)))


async def _eventually(
    database_url: str, query: str, expected: tuple[Any, ...], **params: Any
) -> tuple[Any, ...] | None:
    """The query's row once it equals `expected`, or whatever it is after 5 s."""
    admin = create_async_engine(database_url)
    try:
        deadline = time.monotonic() + 5
        while True:
            async with admin.begin() as conn:
                row = (await conn.execute(text(query), params)).one_or_none()
            found = None if row is None else tuple(row)
            if found == expected or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.05)
    finally:
        await admin.dispose()


async def test_claims_progress_and_a_stopped_answer_through_the_service(
    service: dict[str, Any], database_url: str
) -> None:
    org_id, user_id = uuid4(), uuid4()
    opened = await _open(service, org_id=org_id, user_id=user_id)
    assert opened.session_id is not None
    session_id, answer, correlation_id = opened.session_id, uuid4(), uuid4()

    price = HoldPrice(
        input_per_mtok=Decimal(0), output_per_mtok=Decimal(0), prompt_chars=0, max_tokens=1
    )

    def claim(message_id: Any) -> StartAnswer:
        return StartAnswer(
            org_id=org_id,
            user_id=user_id,
            session_id=session_id,
            message_id=message_id,
            exclude_message_id=uuid4(),
            hold=price,
        )

    async def turn_of(message_id: Any) -> TurnReply:
        return StartReply.model_validate_json(await _ask(service, claim(message_id))).turn

    first = await turn_of(answer)
    waiting = uuid4()
    second = await turn_of(waiting)
    assert first == TurnReply(status="claimed")
    assert second == TurnReply(status="busy", holder_message_id=answer)

    cut_off, stopped_call = uuid4(), uuid4()
    common = {
        "session_id": session_id,
        "correlation_id": correlation_id,
        "message_id": answer,
        "org_id": org_id,
        "user_id": user_id,
    }

    def call(call_id: Any, status: Any, tokens: int) -> LlmCall:
        return LlmCall(
            call_id=call_id,
            provider="scripted",
            model="m",
            status=status,
            usage=Usage(input_tokens=3, output_tokens=tokens, cost_usd=Decimal("0.001") * tokens),
            ttft_ms=1.0,
            total_ms=10.0,
        )

    worker = service["worker"]
    await worker.publish(ProgressEvent(**common, llm_call=call(cut_off, "streaming", 4)))
    # Not persisted: ignored if it ever reaches history's queue.
    await worker.publish(RetryingEvent(**common, attempt=2, reason="worker lost"))
    await worker.publish(
        CompleteEvent(
            **common,
            seq=5,
            attempt=2,
            text="Once upon",
            status="stopped",
            llm_call=call(stopped_call, "stopped", 6),
        ),
    )

    stored = ("stopped", "Once upon", 2)
    query = "SELECT status, content, attempt FROM chat.messages WHERE id = :m"
    assert await _eventually(database_url, query, stored, m=answer) == stored
    calls = await _eventually(
        database_url,
        "SELECT string_agg(status || ':' || output_tokens, ',' ORDER BY attempt) "
        "FROM chat.llm_calls WHERE message_id = :m",
        ("interrupted:4,stopped:6",),
        m=answer,
    )
    assert calls == ("interrupted:4,stopped:6",)
    # The stopped answer freed the turn: the waiting answer gets it.
    third = await turn_of(waiting)
    assert third == TurnReply(status="claimed")


async def test_start_answer_claims_the_turn_then_gives_context_and_a_sized_hold(
    service: dict[str, Any], database_url: str
) -> None:
    """One question before the model call: the turn, the earlier messages, a hold sized for
    them."""
    org_id, user_id = uuid4(), uuid4()
    opened = await _open(service, org_id=org_id, user_id=user_id)
    assert opened.session_id is not None
    session_id, asked, answer = opened.session_id, uuid4(), uuid4()
    admin = create_async_engine(database_url)
    try:
        async with admin.begin() as conn:
            for offset, (role, content) in enumerate(
                (("user", "hello there"), ("assistant", "hi!"))
            ):
                await conn.execute(
                    text(
                        "INSERT INTO chat.messages (id, session_id, org_id, user_id, role, content,"
                        " status, correlation_id, created_at) VALUES (:id, :s, :o, :u, :r, :c,"
                        " 'complete', :id, now() - make_interval(secs => :ago))"
                    ),
                    {
                        "id": uuid4(),
                        "s": session_id,
                        "o": org_id,
                        "u": user_id,
                        "r": role,
                        "c": content,
                        "ago": 10 - offset,
                    },
                )
            await conn.execute(
                text("INSERT INTO chat.org_budgets (org_id, monthly_budget_usd) VALUES (:o, 1)"),
                {"o": org_id},
            )
        hold = HoldPrice(
            input_per_mtok=Decimal(3), output_per_mtok=Decimal(15), prompt_chars=10, max_tokens=1000
        )

        def start(message_id: Any, price: HoldPrice = hold) -> StartAnswer:
            return StartAnswer(
                org_id=org_id,
                user_id=user_id,
                session_id=session_id,
                message_id=message_id,
                exclude_message_id=asked,
                hold=price,
            )

        first = StartReply.model_validate_json(await _ask(service, start(answer)))
        assert first.turn == TurnReply(status="claimed")
        assert [(t.role, t.text) for t in first.context] == [
            ("user", "hello there"),
            ("assistant", "hi!"),
        ]
        expected = max_cost(hold, 10 + len("hello there") + len("hi!"), 1000)
        assert first.budget is not None and first.budget.allowed
        assert first.budget.reserved_usd == expected
        held = "SELECT amount_usd FROM chat.budget_holds WHERE message_id = :m"
        assert await _eventually(database_url, held, (expected,), m=answer) == (expected,)

        # Another answer of the session waits for the turn: no context, no hold.
        other = uuid4()
        second = StartReply.model_validate_json(await _ask(service, start(other)))
        assert second == StartReply(turn=TurnReply(status="busy", holder_message_id=answer))
        async with admin.begin() as conn:
            assert (await conn.execute(text(held), {"m": other})).first() is None

        # The answer's next attempt keeps its turn; a hold beyond the budget is refused.
        dear = hold.model_copy(update={"output_per_mtok": Decimal(10_000)})
        again = StartReply.model_validate_json(await _ask(service, start(answer, dear)))
        assert again.turn.status == "claimed"
        assert again.budget is not None and not again.budget.allowed
    finally:
        await admin.dispose()


async def test_questions_are_answered_after_the_database_dropped_every_connection(
    service: dict[str, Any], database_url: str
) -> None:
    """Connections are not pinged before use: one found closed is replaced and the question
    tried again, so a database restart costs the asker nothing."""
    org_id, user_id = uuid4(), uuid4()
    first = await _open(service, org_id=org_id, user_id=user_id)
    assert await drop_connections(database_url) >= 1  # the service's pooled connection
    again = await _open(service, org_id=org_id, user_id=user_id, session_id=first.session_id)
    assert again.status == "ok" and again.session_id == first.session_id
