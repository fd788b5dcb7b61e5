"""Session events from the broker, as the frames the browser protocol defines.

A frame takes the fields it declares from its event (`FRAME_OF`): a field added to an event and
to its frame reaches the page with no change here. The few frame fields an event does not carry
are filled by `_FILLED`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final
from uuid import UUID

from pydantic import BaseModel

from chat_contracts.codes import ErrorCode
from chat_contracts.events import (
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
from chat_contracts.protocol import (
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

# The events the browser sees, and the frame each becomes. The others (`routed`, `progress`,
# `delivered`, ...) are for the services only.
FRAME_OF: Final[dict[type[BaseModel], type[ServerFrame]]] = {
    TokenEvent: TokenFrame,
    ToolCallEvent: ToolCallFrame,
    ToolResultEvent: ToolResultFrame,
    CompleteEvent: CompleteFrame,
    ErrorEvent: ErrorFrame,
    RetryingEvent: RetryingFrame,
    QueuedEvent: QueuedFrame,
    SessionEndedEvent: SessionEndedFrame,
}


class Outgoing:
    """A frame, and where it stands in its answer (no `message_id`: not an answer's event)."""

    __slots__ = ("attempt", "data", "final", "message_id", "seq")

    def __init__(
        self,
        data: str,
        message_id: UUID | None = None,
        attempt: int = 0,
        seq: int = 0,
        *,
        final: bool = False,
    ) -> None:
        self.data = data
        self.message_id = message_id
        self.attempt = attempt
        self.seq = seq
        self.final = final


def retrying_text(attempt: int) -> str:
    """What a user reads when an answer starts over."""
    return (
        "The answer was interrupted (its worker stopped or lost its connection) and is being "
        f"generated again (attempt {attempt})."
    )


_ERROR_CODES: Final = frozenset(ErrorCode)


def _retrying(event: Any) -> dict[str, Any]:
    return {"message": retrying_text(event.attempt)}


def _error(event: Any) -> dict[str, Any]:
    # A code this release does not know (a newer worker's): the client is told it failed.
    return {} if event.code in _ERROR_CODES else {"code": ErrorCode.INTERNAL}


# Frame fields an event does not carry as such.
_FILLED: Final[dict[type[BaseModel], Callable[[Any], dict[str, Any]]]] = {
    RetryingEvent: _retrying,
    ErrorEvent: _error,
}
# Per event class: its frame, the fields they share and what fills the rest (worked out once:
# this runs per token).
_MAPPING: Final = {
    event: (
        frame,
        tuple(name for name in frame.model_fields if name in event.model_fields),
        _FILLED.get(event),
    )
    for event, frame in FRAME_OF.items()
}


def to_frame(event: AnySessionEvent) -> ServerFrame | None:
    """The frame for an event, or None for events the browser does not see."""
    found = _MAPPING.get(type(event))
    if found is None:
        return None
    frame, shared, fill = found
    values = event.__dict__
    fields = {name: values[name] for name in shared}
    if fill is not None:
        fields.update(fill(event))
    return frame(**fields)


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
