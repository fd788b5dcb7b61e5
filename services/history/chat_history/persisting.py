"""What each session event history persists writes, in the transaction it is given.

The event writer (`chat_history.writer`) calls `persist_event` for every event it is handed,
in batches, each batch one transaction. Events may arrive in any order and more than once: an
answer's `complete` before its `routed`, a final event late after a later attempt began.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from chat_contracts.events import (
    CompleteEvent,
    DeliveredEvent,
    ErrorEvent,
    PersistedEvent,
    ProgressEvent,
    RoutedEvent,
    ToolCallEvent,
    ToolResultEvent,
    UserMessage,
)
from chat_history.store import budget, llm_calls, messages, sessions, timings, tool_calls, turns


async def persist_event(conn: AsyncConnection, event: PersistedEvent, trace_id: str | None) -> None:
    """Write one session event (and its hop times, with the trace of the message that brought
    it) in the transaction given."""
    match event:
        case UserMessage():
            await messages.save_user_message(conn, event)
            await sessions.touch_session(conn, event.session_id)
        case RoutedEvent():
            await messages.save_routed(conn, event)
        case ToolCallEvent():
            await tool_calls.save_tool_call(conn, event)
        case ToolResultEvent():
            await tool_calls.save_tool_result(conn, event)
        case CompleteEvent() | ErrorEvent():
            await messages.save_final(conn, event)
            await answer_ended(conn, event)
            if isinstance(event, CompleteEvent):
                await sessions.touch_session(conn, event.session_id)
        case ProgressEvent():
            await save_progress(conn, event)
        case DeliveredEvent():
            pass  # only the timeline needs it
    await timings.record(conn, event, trace_id)


async def answer_ended(conn: AsyncConnection, event: CompleteEvent | ErrorEvent) -> None:
    """What follows any final event: its call recorded, the calls its earlier attempts left
    streaming marked interrupted, the budget hold released and the session's turn freed.

    A later attempt may already be running (this final was late in history's queue); if it has
    reported a call, its calls, hold and turn are left to its own final event.
    """
    if event.llm_call is not None:
        await llm_calls.record_llm_call(conn, event, event.llm_call)
    await llm_calls.interrupt_streaming_calls(conn, event.message_id, event.attempt)
    if not await llm_calls.later_attempt_called(conn, event.message_id, event.attempt):
        await budget.release_hold(conn, event.message_id)
        await turns.release_turn(conn, event.session_id, event.message_id)


async def save_progress(conn: AsyncConnection, event: ProgressEvent) -> None:
    """A model call's usage so far (`streaming`) or its last usage (`interrupted`)."""
    call = event.llm_call
    if call.status == "streaming":
        ended = await messages.ended_attempt(conn, event.message_id)
        if ended is not None and ended >= event.attempt:
            # A report that arrives after its answer ended: that call will never finish.
            call = call.model_copy(update={"status": "interrupted"})
    # The call's row before the session's, as a final event locks them (`answer_ended`):
    # the other order deadlocked with a final event of the same answer (docs/faults.md).
    await llm_calls.record_llm_call(conn, event, call)
    if call.status == "streaming":
        await turns.keep_turn(conn, event.session_id, event.message_id)
