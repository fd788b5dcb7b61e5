"""Persists session events and answers history questions (RabbitMQ request/reply)."""

from __future__ import annotations

import logging

from faststream.middlewares import AckPolicy
from faststream.rabbit import Channel, RabbitBroker
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chat_history import repository, timings
from chat_history.db import driver_transaction, org_transaction, retry_transient
from chat_history.settings import HistorySettings
from chat_history.writer import EventWriter, Persisted
from chat_shared.contracts import (
    AnyHistoryRequest,
    AnySessionEvent,
    ClaimTurn,
    CompleteEvent,
    ContextReply,
    DeliveredEvent,
    ErrorEvent,
    GetContext,
    GetTimeline,
    OpenSession,
    ProgressEvent,
    QueuedEvent,
    ReserveBudget,
    RetryingEvent,
    RoutedEvent,
    SessionEndedEvent,
    StartAnswer,
    StartReply,
    TokenEvent,
    ToolCallEvent,
    ToolResultEvent,
    UserMessage,
    history_request_adapter,
    session_event_adapter,
)
from chat_shared.runtime import Delivery, process_work, raw_message
from chat_shared.topology import Topology

log = logging.getLogger("chat_history")


async def persist_event(conn: AsyncConnection, event: Persisted, trace_id: str | None) -> None:
    """Write one session event (and its hop times, with the trace of the message that brought it)
    in the transaction given: what the event writer does for each event it is handed."""
    match event:
        case UserMessage():
            await repository.save_user_message(conn, event)
        case RoutedEvent():
            await repository.save_routed(conn, event)
        case ToolCallEvent():
            await repository.save_tool_call(conn, event)
        case ToolResultEvent():
            await repository.save_tool_result(conn, event)
        case CompleteEvent():
            await repository.save_complete(conn, event)
        case ErrorEvent():
            await repository.save_error(conn, event)
        case ProgressEvent():
            await repository.save_progress(conn, event)
        case DeliveredEvent():
            pass  # only the timeline needs it
    await timings.record(conn, event, trace_id)


async def start_answer(
    engine: AsyncEngine, settings: HistorySettings, writer: EventWriter, request: StartAnswer
) -> StartReply:
    """Claim the session's turn for the answer, with its earlier turns and its budget hold.

    Two transactions in one round trip: the session's row is not held while the org's budget
    row is waited for (one org's holds are decided one at a time), and the hold is one
    statement, so that row is locked only while PostgreSQL runs it. A turn held by an answer
    whose final event the writer is writing is claimed again once that is written, rather than
    answered "busy" (the worker would ask again later, tens of milliseconds or more).
    """
    async with driver_transaction(engine, request.org_id) as conn:
        turn, turns = await repository.claim_with_context(conn, request)
    holder = turn.holder_message_id
    if turn.status == "busy" and holder is not None and await writer.final_written(holder):
        async with driver_transaction(engine, request.org_id) as conn:
            turn, turns = await repository.claim_with_context(conn, request)
    if turn.status != "claimed":
        return StartReply(turn=turn)
    # The claim interrupted the answer's streaming calls already.
    budget = await repository.hold_budget(
        engine,
        request.org_id,
        request.message_id,
        repository.hold_for(request, turns),
        settings.default_org_budget_usd,
        settings.budget_hold_ttl_seconds,
    )
    return StartReply(turn=turn, turns=turns, budget=budget)


def register(
    broker: RabbitBroker,
    settings: HistorySettings,
    engine: AsyncEngine,
    writer_engine: AsyncEngine | None = None,
) -> None:
    """History's handlers: questions on `engine`, event writes on `writer_engine` (`engine`
    if not given)."""
    topology = Topology(settings.broker_prefix)

    writer = EventWriter(
        writer_engine or engine,
        persist_event,
        max_batch=settings.history_prefetch,
        lanes=settings.history_write_lanes,
    )

    async def write(event: AnySessionEvent) -> None:
        # Not in PERSISTED_EVENTS (chat_shared.topology): they reach this queue only by mistake.
        if isinstance(event, TokenEvent | SessionEndedEvent | RetryingEvent | QueuedEvent):
            log.warning("ignored an event the history service does not persist")
            return
        await writer.write(event)

    @broker.subscriber(
        topology.history_events,
        topology.events,
        channel=Channel(prefetch_count=settings.history_prefetch),
        ack_policy=AckPolicy.MANUAL,
        decoder=raw_message,
    )
    async def on_session_event(msg: Delivery) -> None:
        await process_work(msg, session_event_adapter.validate_json, write)

    async def answer(request: AnyHistoryRequest) -> BaseModel:
        if isinstance(request, StartAnswer):
            return await start_answer(engine, settings, writer, request)
        async with org_transaction(engine, request.org_id) as conn:
            match request:
                case OpenSession():
                    return await repository.open_session(
                        conn,
                        request.org_id,
                        request.user_id,
                        request.session_id,
                        request.history_limit,
                    )
                case GetContext():
                    turns = await repository.context_turns(
                        conn,
                        request.org_id,
                        request.user_id,
                        request.session_id,
                        request.exclude_message_id,
                        request.limit,
                    )
                    return ContextReply(turns=turns)
                case ReserveBudget():
                    return await repository.reserve_budget(
                        conn,
                        request.org_id,
                        request.message_id,
                        request.amount_usd,
                        settings.default_org_budget_usd,
                        settings.budget_hold_ttl_seconds,
                    )
                case GetTimeline():
                    return await timings.timeline(
                        conn, request.org_id, request.user_id, request.message_id
                    )
                case ClaimTurn():
                    return await repository.claim_turn(
                        conn,
                        request.org_id,
                        request.user_id,
                        request.session_id,
                        request.message_id,
                        interrupt=request.interrupt,
                        stale_after_seconds=request.stale_after_seconds,
                    )

    @broker.subscriber(topology.history_rpc, decoder=raw_message)
    async def on_request(msg: Delivery) -> bytes:
        try:
            request = history_request_adapter.validate_json(msg.body)
        except ValidationError:
            log.warning("refused a malformed history request")
            return b'{"error":"bad_request"}'
        # The asker is waiting: a deadlock victim is tried again rather than left to time out.
        reply = await retry_transient(lambda: answer(request))
        return reply.model_dump_json().encode()
