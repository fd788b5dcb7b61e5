"""History's event writer on the services' database role: events that arrive while a batch is
being written are written together in one transaction, each under its own org (row-level
security), and one event that fails fails alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from uuid import UUID, uuid4

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from chat_contracts.events import PersistedEvent, UserMessage
from chat_contracts.history import HoldPrice, StartAnswer
from chat_devtools.questions import a_question as _question
from chat_devtools.questions import a_user as _user
from chat_history.answers import AnswerStarts
from chat_history.db import fetch_value, org_transaction
from chat_history.persisting import persist_event
from chat_history.settings import HistorySettings
from chat_history.store import sessions
from chat_history.writer import EventWriter
from tests.support.db import drop_connections


@pytest.fixture
async def engine(app_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(app_database_url)
    yield engine
    await engine.dispose()


class Recorder:
    """Persists user messages as the service does, noting each one's transaction; raises for
    the messages in `poison`."""

    def __init__(self) -> None:
        self.transactions: list[int] = []
        self.poison: set[str] = set()

    async def __call__(
        self, conn: AsyncConnection, event: PersistedEvent, trace_id: str | None
    ) -> None:
        assert isinstance(event, UserMessage)
        if event.text in self.poison:
            raise RuntimeError("cannot write this one")
        await persist_event(conn, event, None)
        self.transactions.append(await fetch_value(conn, "SELECT txid_current()"))


async def _visible(engine: AsyncEngine, message: UserMessage) -> bool:
    async with org_transaction(engine, message.user.org_id) as conn:
        row = await conn.execute(
            text("SELECT 1 FROM chat.messages WHERE id = :id"), {"id": message.message_id}
        )
        return row.first() is not None


async def _messages(engine: AsyncEngine, count: int) -> list[UserMessage]:
    """User messages of `count` users of different orgs."""
    messages = []
    for i in range(count):
        user = _user()
        async with org_transaction(engine, user.org_id) as conn:
            opened = await sessions.open_session(conn, user.org_id, user.user_id, None, 10)
        assert opened.session_id is not None
        message = _question(user, opened.session_id)[0]
        messages.append(message.model_copy(update={"text": f"message {i}"}))
    return messages


async def test_events_that_arrive_during_a_write_are_written_together(
    engine: AsyncEngine,
) -> None:
    recorder = Recorder()
    writer = EventWriter(engine, recorder, max_batch=16)
    first, *others = await _messages(engine, 6)
    await writer.write(first)  # alone: written at once, in its own transaction
    await asyncio.gather(*(writer.write(m) for m in others))  # these arrive together
    assert (writer.batches, writer.events) == (2, 6)
    assert len(set(recorder.transactions)) == 2
    # Five orgs in one transaction: each row was written under its own org (RLS).
    for message in [first, *others]:
        assert await _visible(engine, message)


async def test_a_batch_is_at_most_max_batch_events(engine: AsyncEngine) -> None:
    writer = EventWriter(engine, Recorder(), max_batch=2)
    await asyncio.gather(*(writer.write(m) for m in await _messages(engine, 5)))
    assert (writer.batches, writer.events) == (3, 5)


async def test_one_bad_event_fails_alone(engine: AsyncEngine) -> None:
    recorder = Recorder()
    writer = EventWriter(engine, recorder, max_batch=16)
    messages = await _messages(engine, 4)
    recorder.poison.add(messages[2].text)
    results = await asyncio.gather(*(writer.write(m) for m in messages), return_exceptions=True)
    assert [isinstance(r, RuntimeError) for r in results] == [False, False, True, False]
    assert [await _visible(engine, m) for m in messages] == [True, True, False, True]


async def test_a_claim_of_the_turn_waits_for_the_final_event_being_written(
    engine: AsyncEngine,
) -> None:
    """The session's next answer asks for the turn while the previous answer's final event is
    being written: it gets the turn once that is written, with that answer in its context,
    instead of "busy"."""
    gate = asyncio.Event()

    async def slow_persist(
        conn: AsyncConnection, event: PersistedEvent, trace_id: str | None
    ) -> None:
        await gate.wait()
        await persist_event(conn, event, trace_id)

    settings = HistorySettings(database_url="postgresql+asyncpg://unused/unused")
    writer = EventWriter(engine, slow_persist, max_batch=16)
    user = _user()
    async with org_transaction(engine, user.org_id) as conn:
        opened = await sessions.open_session(conn, user.org_id, user.user_id, None, 10)
    assert opened.session_id is not None
    message, routed, complete = _question(user, opened.session_id)
    async with org_transaction(engine, user.org_id) as conn:
        await persist_event(conn, message, None)
        await persist_event(conn, routed, None)
    hold = HoldPrice(
        input_per_mtok=Decimal(3), output_per_mtok=Decimal(15), prompt_chars=5, max_tokens=100
    )

    def start(answer: UUID) -> StartAnswer:
        return StartAnswer(
            org_id=user.org_id,
            user_id=user.user_id,
            session_id=opened.session_id,
            message_id=answer,
            exclude_message_id=uuid4(),
            hold=hold,
        )

    first = await AnswerStarts(engine, settings, writer).start(start(routed.message_id))
    assert first.turn.status == "claimed"
    writing = asyncio.create_task(writer.write(complete))
    starting = asyncio.create_task(AnswerStarts(engine, settings, writer).start(start(uuid4())))
    await asyncio.sleep(0.3)
    assert not starting.done()  # waiting for the final event, not answered "busy"
    gate.set()
    await writing
    second = await starting
    assert second.turn.status == "claimed"
    assert [(t.role, t.text) for t in second.context] == [
        ("user", "hello"),
        ("assistant", "hi there"),
    ]

    # Held by an answer whose final event the writer does not have: "busy" at once.
    third = await asyncio.wait_for(AnswerStarts(engine, settings, writer).start(start(uuid4())), 5)
    assert third.turn.status == "busy"


async def test_sessions_in_different_lanes_are_written_concurrently(engine: AsyncEngine) -> None:
    """A lane stuck on one session's event does not hold up another lane's sessions; a session's
    events stay in one lane, in arrival order."""
    gate = asyncio.Event()
    written: list[str] = []

    async def persist(conn: AsyncConnection, event: PersistedEvent, trace_id: str | None) -> None:
        assert isinstance(event, UserMessage)
        if event.text.startswith("stuck"):
            await gate.wait()
        await persist_event(conn, event, None)
        written.append(event.text)

    writer = EventWriter(engine, persist, max_batch=16, lanes=2)
    by_lane: dict[int, UserMessage] = {}
    while len(by_lane) < 2:  # one session in each lane
        (message,) = await _messages(engine, 1)
        by_lane.setdefault(message.session_id.int % 2, message)
    stuck = by_lane[0].model_copy(update={"text": "stuck"})
    after = by_lane[0].model_copy(update={"text": "after stuck", "message_id": uuid4()})
    free = by_lane[1].model_copy(update={"text": "free"})
    stuck_writing = asyncio.create_task(writer.write(stuck))
    after_writing = asyncio.create_task(writer.write(after))
    await asyncio.wait_for(writer.write(free), 5)  # not behind the stuck lane
    assert written == ["free"]
    gate.set()
    await asyncio.gather(stuck_writing, after_writing)
    assert written == ["free", "stuck", "after stuck"]
    assert await _visible(engine, after)


async def test_a_sqlalchemy_statement_in_the_writers_transaction_fails_it_whole(
    engine: AsyncEngine,
) -> None:
    """The writer begins and commits its transactions on the driver connection; a persist
    function that ran a SQLAlchemy statement there would begin a transaction SQLAlchemy then
    rolls back behind the writer's back. It fails loudly instead, and nothing of it is kept."""
    first, second = await _messages(engine, 2)

    async def persist(conn: AsyncConnection, event: PersistedEvent, trace_id: str | None) -> None:
        assert isinstance(event, UserMessage)
        await persist_event(conn, event, None)
        if event is second:
            await conn.execute(text("SELECT 1"))

    writer = EventWriter(engine, persist, max_batch=16)
    await writer.write(first)
    with pytest.raises(RuntimeError, match="SQLAlchemy statement"):
        await writer.write(second)
    assert await _visible(engine, first)
    assert not await _visible(engine, second)


async def test_the_writer_writes_again_after_the_database_dropped_its_connections(
    engine: AsyncEngine, database_url: str
) -> None:
    """A connection found closed fails its batch once and leaves the pool (a new one is opened
    for the next write): the event's message goes back to the queue and is written when it
    comes again, as it is here."""
    first, second = await _messages(engine, 2)
    writer = EventWriter(engine, persist_event, max_batch=16)
    await writer.write(first)
    assert await drop_connections(database_url) >= 1
    failures = 0
    while True:
        try:
            await writer.write(second)
            break
        except Exception:
            failures += 1
            assert failures < 3, "a closed connection was handed out again"
    assert await _visible(engine, second)
