"""The hop times of each answer (`chat.message_timings`) and the timeline built from them.

Writes run in the event's org transaction, so row-level security applies as on every chat table.
Events of an answer arrive in any order and may be redelivered, so each one fills only its own
columns, and a column once set keeps its first value; the delivery time keeps the earliest of
the gateways that report it (several replicas may hold the session's sockets).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from chat_contracts.events import (
    AnySessionEvent,
    CompleteEvent,
    DeliveredEvent,
    ErrorEvent,
    RoutedEvent,
    UserMessage,
)
from chat_contracts.history import TimelineReply
from chat_history.db import execute, fetch_row
from chat_runtime.timeline import build_timeline

HOP_COLUMNS = {
    "received": "received_at",
    "routed": "routed_at",
    "queued": "queued_at",
    "started": "started_at",
    "model_called": "model_called_at",
    "first_output": "first_output_at",
    "first_output_delivered": "first_output_delivered_at",
    "completed": "completed_at",
    "persisted": "persisted_at",
}


def _ts(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


Hops = dict[str, datetime | None]


def _hop_times(event: AnySessionEvent) -> tuple[UUID, UUID, UUID, Hops] | None:
    """The assistant message an event belongs to, its correlation id, its org and the hop
    times it brings."""
    match event:
        case UserMessage():
            return (
                event.reply_message_id,
                event.correlation_id,
                event.user.org_id,
                {"received_at": _ts(event.received_at)},
            )
        case RoutedEvent():
            return (
                event.message_id,
                event.correlation_id,
                event.org_id,
                {"routed_at": _ts(event.routed_at)},
            )
        case CompleteEvent() | ErrorEvent():
            values: Hops = {
                "completed_at": _ts(event.emitted_at),
                # The answer's row is written in this same transaction, just before.
                "persisted_at": _ts(time.time()),
            }
            if event.hops is not None:
                values |= {
                    "queued_at": _ts(event.hops.queued_at),
                    "started_at": _ts(event.hops.started_at),
                    "model_called_at": _ts(event.hops.model_called_at),
                    "first_output_at": _ts(event.hops.first_output_at),
                }
            return event.message_id, event.correlation_id, event.org_id, values
        case DeliveredEvent():
            return (
                event.message_id,
                event.correlation_id,
                event.org_id,
                {"first_output_delivered_at": _ts(event.delivered_at)},
            )
    return None


# Every hop column is a parameter, $5-$13 in HOP_COLUMNS' order; an event leaves those it does
# not bring NULL, which fills nothing in (coalesce) and does not lower a delivery time (least
# ignores NULLs).
_RECORD = """
    INSERT INTO chat.message_timings AS t (message_id, org_id, correlation_id, trace_id,
        received_at, routed_at, queued_at, started_at, model_called_at, first_output_at,
        first_output_delivered_at, completed_at, persisted_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
    ON CONFLICT (message_id) DO UPDATE SET
        trace_id = coalesce(t.trace_id, excluded.trace_id),
        received_at = coalesce(t.received_at, excluded.received_at),
        routed_at = coalesce(t.routed_at, excluded.routed_at),
        queued_at = coalesce(t.queued_at, excluded.queued_at),
        started_at = coalesce(t.started_at, excluded.started_at),
        model_called_at = coalesce(t.model_called_at, excluded.model_called_at),
        first_output_at = coalesce(t.first_output_at, excluded.first_output_at),
        first_output_delivered_at = least(t.first_output_delivered_at,
                                          excluded.first_output_delivered_at),
        completed_at = coalesce(t.completed_at, excluded.completed_at),
        persisted_at = coalesce(t.persisted_at, excluded.persisted_at)
"""


async def record(conn: AsyncConnection, event: AnySessionEvent, trace_id: str | None) -> None:
    """Write the hop times an event brings (no-op for events that bring none), with the trace
    of the message that brought it (hand-written SQL on the driver connection: this runs for
    every event history persists)."""
    found = _hop_times(event)
    if found is None:
        return
    message_id, correlation_id, org_id, hops = found
    await execute(
        conn,
        _RECORD,
        message_id,
        org_id,
        correlation_id,
        trace_id,
        *(hops.get(column) for column in HOP_COLUMNS.values()),
    )


_TIMELINE = f"""
    SELECT m.status, m.tier, m.correlation_id, t.trace_id,
           {", ".join(f"t.{column}" for column in HOP_COLUMNS.values())}
      FROM chat.messages m JOIN chat.message_timings t ON t.message_id = m.id
     WHERE m.id = $1 AND m.role = 'assistant' AND m.org_id = $2 AND m.user_id = $3
"""  # nosec B608


async def timeline(
    conn: AsyncConnection, org_id: UUID, user_id: UUID, message_id: UUID
) -> TimelineReply:
    """The timeline of an assistant message, only for the user who owns it."""
    row = await fetch_row(conn, _TIMELINE, message_id, org_id, user_id)
    if row is None:
        # Someone else's message, an unknown id and a message without timings look alike.
        return TimelineReply(status="not_found")
    times = {
        hop: (row[column].timestamp() if row[column] is not None else None)
        for hop, column in HOP_COLUMNS.items()
    }
    return TimelineReply(
        status="ok",
        timeline=build_timeline(
            message_id=message_id,
            correlation_id=row["correlation_id"],
            status=row["status"],
            tier=row["tier"],
            trace_id=row["trace_id"],
            times=times,
        ),
    )
