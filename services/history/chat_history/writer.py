"""Session events persisted in batches: one transaction for the events that arrived together.

Each event used to cost its own transaction: BEGIN, the org setting, a connection check and
COMMIT around two or three statements, and a connection of the pool per event in flight. Under
load most of history's time went there (docs/benchmarks.md). Each of the writer's lanes keeps
one flush going at a time: an event that arrives while its lane writes nothing is written at
once (no window, no added latency when idle); events that arrive meanwhile wait for the flush in
progress and are then written together, in arrival order, in one transaction.

Lanes (`HISTORY_WRITE_LANES`): a flush waits for a round trip to PostgreSQL per statement (and,
under load, for its place on the event loop), so one lane's throughput is bounded by those waits,
not by its CPU (docs/benchmarks.md, "History under load"). A session's events always take the
same lane (by session id): they are written in arrival order, and no two lanes write the same
rows, so concurrent lanes neither wait for nor deadlock with each other.

An answer's final event frees its session's turn when it is written. A turn claim that finds the
turn held by an answer whose final event this writer has in hand waits for that write
(`final_written`) instead of answering "busy": the next question of a session often asks for the
turn while the previous answer's final event is still being written.

A batch that fails is written again one event per transaction, so one bad event (or a deadlock
victim) fails alone: its handler returns it to the queue, the others are acknowledged. Rows
are keyed by ids that come with the events, so writing an event twice changes nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chat_contracts.events import CompleteEvent, ErrorEvent, PersistedEvent, UserMessage
from chat_history.db import driver_transaction, set_org_here
from chat_runtime.tracing import current_trace_id

log = logging.getLogger("chat_history.writer")

# Writes one event in the transaction given, with the trace id of the message that brought it.
Persist = Callable[[AsyncConnection, PersistedEvent, str | None], Awaitable[None]]


@dataclass
class _Item:
    event: PersistedEvent
    trace_id: str | None
    done: asyncio.Future[None]


# How many answers' final events the writer remembers (written or being written), for
# `final_written`.
REMEMBERED_FINALS = 1024


def org_of(event: PersistedEvent) -> UUID:
    return event.user.org_id if isinstance(event, UserMessage) else event.org_id


class EventWriter:
    def __init__(
        self, engine: AsyncEngine, persist: Persist, max_batch: int, lanes: int = 1
    ) -> None:
        self._engine = engine
        self._persist = persist
        self._max_batch = max_batch
        # Per lane: the events waiting to be written, and the flush writing them.
        self._pending: list[list[_Item]] = [[] for _ in range(lanes)]
        self._flushing: list[asyncio.Task[None] | None] = [None] * lanes
        # Answer id -> the write of its final event, the latest REMEMBERED_FINALS of them.
        self._finals: OrderedDict[UUID, asyncio.Future[None]] = OrderedDict()
        # How many transactions wrote how many events (the benchmark and tests read these).
        self.batches = 0
        self.events = 0

    async def write(self, event: PersistedEvent) -> None:
        """Return once `event` is committed; raise what writing it raised."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # A session's events always take the same lane, so they are written in arrival order
        # and no two lanes ever write the same rows.
        lane = event.session_id.int % len(self._pending)
        pending = self._pending[lane]
        # The flush runs in its own task: the trace of the message is taken along.
        pending.append(_Item(event, current_trace_id(), future))
        if isinstance(event, CompleteEvent | ErrorEvent):
            self._finals[event.message_id] = future
            self._finals.move_to_end(event.message_id)
            if len(self._finals) > REMEMBERED_FINALS:
                self._finals.popitem(last=False)
        flushing = self._flushing[lane]
        if flushing is None or flushing.done():
            self._flushing[lane] = asyncio.create_task(self._flush(pending))
        await future

    async def final_written(self, message_id: UUID) -> bool:
        """Whether a final event of answer `message_id` has been written by this writer, once
        the write of the one it has in hand, if any, is done; False if it has none."""
        future = self._finals.get(message_id)
        if future is None:
            return False
        # The write belongs to the event's handler: waiting for it here must not cancel it.
        await asyncio.wait([future])
        return not future.cancelled() and future.exception() is None

    async def _flush(self, pending: list[_Item]) -> None:
        while pending:
            batch = pending[: self._max_batch]
            del pending[: self._max_batch]
            try:
                await self._write(batch)
            except Exception as exc:
                if len(batch) == 1:
                    _fail(batch, exc)
                    continue
                log.warning("a batch of %d events failed; writing them one by one", len(batch))
                for item in batch:
                    try:
                        await self._write([item])
                    except Exception as one:
                        _fail([item], one)
            except BaseException:
                for item in batch:  # cancelled (shutting down): so are the handlers waiting
                    item.done.cancel()
                raise

    async def _write(self, batch: list[_Item]) -> None:
        # Persist functions run their statements on the driver connection (chat_history.db).
        async with driver_transaction(self._engine) as conn:
            org: UUID | None = None
            for item in batch:
                if (event_org := org_of(item.event)) != org:
                    org = event_org
                    await set_org_here(conn, org)
                await self._persist(conn, item.event, item.trace_id)
        self.batches += 1
        self.events += len(batch)
        for item in batch:
            if not item.done.done():
                item.done.set_result(None)


def _fail(batch: list[_Item], exc: Exception) -> None:
    for item in batch:
        if not item.done.done():
            item.done.set_exception(exc)
