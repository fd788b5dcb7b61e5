"""Session events from the broker, as the frames the browser protocol defines."""

from __future__ import annotations

from chat_gateway.hub import Outgoing
from chat_shared.contracts import (
    AnySessionEvent,
    CompleteEvent,
    ErrorEvent,
    QueuedEvent,
    RetryingEvent,
    SessionEndedEvent,
    StreamEvent,
    TokenEvent,
    ToolCallEvent,
    ToolResultEvent,
)
from chat_shared.protocol import (
    CompleteFrame,
    ErrorFrame,
    QueuedFrame,
    RetryingFrame,
    ServerFrame,
    SessionEndedFrame,
    TokenFrame,
    ToolCallFrame,
    ToolResultFrame,
)


def retrying_text(attempt: int) -> str:
    """What a user reads when an answer starts over."""
    return (
        "The answer was interrupted (its worker stopped or lost its connection) and is being "
        f"generated again (attempt {attempt})."
    )


def to_frame(event: AnySessionEvent) -> ServerFrame | None:
    """The frame for an event, or None for events the browser does not see (progress, ...)."""
    match event:
        case TokenEvent():
            return TokenFrame(
                message_id=event.message_id,
                seq=event.seq,
                attempt=event.attempt,
                text=event.text,
                deltas=event.deltas,
                emitted_at=event.emitted_at,
            )
        case ToolCallEvent():
            return ToolCallFrame(
                message_id=event.message_id,
                seq=event.seq,
                attempt=event.attempt,
                call_id=event.call_id,
                tool=event.tool,
                input=event.input,
            )
        case ToolResultEvent():
            return ToolResultFrame(
                message_id=event.message_id,
                seq=event.seq,
                attempt=event.attempt,
                call_id=event.call_id,
                output=event.output,
                is_error=event.is_error,
            )
        case CompleteEvent():
            return CompleteFrame(
                message_id=event.message_id,
                seq=event.seq,
                attempt=event.attempt,
                text=event.text,
                status=event.status,
                model=event.model,
                provider=event.provider,
                tool=event.tool,
                usage=event.usage,
            )
        case ErrorEvent():
            return ErrorFrame(
                code=event.code,
                message=event.message,
                message_id=event.message_id,
                seq=event.seq,
                attempt=event.attempt,
                retryable=event.retryable,
            )
        case RetryingEvent():
            return RetryingFrame(
                message_id=event.message_id,
                attempt=event.attempt,
                message=retrying_text(event.attempt),
            )
        case QueuedEvent():
            return QueuedFrame(
                message_id=event.message_id, behind_message_id=event.behind_message_id
            )
        case SessionEndedEvent():
            return SessionEndedFrame(session_id=event.session_id, reason=event.reason)
    return None


def outgoing(event: AnySessionEvent) -> Outgoing | None:
    """The event's frame with its place in its answer (for each socket's dedupe), or None."""
    frame = to_frame(event)
    if frame is None:
        return None
    data = frame.model_dump_json()
    match event:
        case StreamEvent():
            final = isinstance(event, CompleteEvent | ErrorEvent)
            return Outgoing(data, event.message_id, event.attempt, event.seq, final=final)
        case RetryingEvent():  # seq 0 of its attempt: it comes before the attempt's events
            return Outgoing(data, event.message_id, event.attempt, 0)
    return Outgoing(data)
