"""History's event writer on the services' database role: events that arrive while a batch is
being written are written together in one transaction, each under its own org (row-level
security), and one event that fails fails alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from chat_history import repository
from chat_history.db import org_transaction
from chat_history.writer import EventWriter, Persisted
from chat_shared.contracts import UserMessage
from tests.support.turns import a_turn as _turn
from tests.support.turns import a_user as _user


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

    async def __call__(self, conn: AsyncConnection, event: Persisted, trace_id: str | None) -> None:
        assert isinstance(event, UserMessage)
        if event.text in self.poison:
            raise RuntimeError("cannot write this one")
        await repository.save_user_message(conn, event)
        self.transactions.append((await conn.execute(text("SELECT txid_current()"))).scalar_one())


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
            opened = await repository.open_session(conn, user.org_id, user.user_id, None, 10)
        assert opened.session_id is not None
        message = _turn(user, opened.session_id)[0]
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
