"""Session events from the broker, as the frames the browser protocol defines."""

from __future__ import annotations

from chat_shared.contracts import (
    AnySessionEvent,
    CompleteEvent,
    ErrorEvent,
    SessionEndedEvent,
    TokenEvent,
    ToolCallEvent,
    ToolResultEvent,
)
from chat_shared.protocol import (
    CompleteFrame,
    ErrorFrame,
    ServerFrame,
    SessionEndedFrame,
    TokenFrame,
    ToolCallFrame,
    ToolResultFrame,
)


def to_frame(event: AnySessionEvent) -> ServerFrame | None:
    """The frame for an event, or None for events the browser does not see."""
    match event:
        case TokenEvent():
            return TokenFrame(
                message_id=event.message_id,
                seq=event.seq,
                text=event.text,
                deltas=event.deltas,
                emitted_at=event.emitted_at,
            )
        case ToolCallEvent():
            return ToolCallFrame(
                message_id=event.message_id,
                seq=event.seq,
                call_id=event.call_id,
                tool=event.tool,
                input=event.input,
            )
        case ToolResultEvent():
            return ToolResultFrame(
                message_id=event.message_id,
                seq=event.seq,
                call_id=event.call_id,
                output=event.output,
                is_error=event.is_error,
            )
        case CompleteEvent():
            return CompleteFrame(
                message_id=event.message_id,
                seq=event.seq,
                text=event.text,
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
                retryable=event.retryable,
            )
        case SessionEndedEvent():
            return SessionEndedFrame(session_id=event.session_id, reason=event.reason)
    return None
