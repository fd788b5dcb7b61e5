"""Session events: what happened in a session, published on `session.<id>.<type>`.

Two families, and the set history persists is derived from them, nowhere else:
- `PersistedEvent`: bound to history's queue and written to the database;
- `LiveEvent`: for the sockets following the session only (tokens, retries, queueing, the end of
  a session). The assistant message is written once, from its final event, never token by token.

Stream events (`StreamEvent`) belong to one assistant message and carry `seq`, counting from 1
per attempt of that message.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal, get_args
from uuid import UUID

from pydantic import BaseModel, Field, TypeAdapter

from chat_contracts.base import Contract, HopTimes, LlmCall, Usage, UserRef


class SessionEvent(Contract):
    session_id: UUID


class UserMessage(SessionEvent):
    """A user's message: the orchestrator's work and a session event in one."""

    type: Literal["user_message"] = "user_message"
    correlation_id: UUID
    message_id: UUID
    reply_message_id: UUID
    client_message_id: str
    user: UserRef
    text: str
    received_at: float


class StreamEvent(SessionEvent):
    """An event of one assistant message."""

    correlation_id: UUID
    message_id: UUID
    seq: int = Field(ge=1)
    # Which delivery of the work produced it: an answer retried on another worker (its first
    # worker died or lost the broker) streams again from seq 1 with the next attempt.
    attempt: int = Field(default=1, ge=1)
    # When the worker published it (stamped by `chat_runtime.timeline.stamp`).
    emitted_at: float | None = None


class RoutedEvent(SessionEvent):
    """The orchestrator's decision for one user message."""

    type: Literal["routed"] = "routed"
    correlation_id: UUID
    message_id: UUID
    user_message_id: UUID
    org_id: UUID
    user_id: UUID
    tier: Literal[1, 2]
    tool: str | None = None
    pattern: str | None = None
    routed_at: float


class TokenEvent(StreamEvent):
    """Text to append to the answer: one or more of the provider's deltas, in order.

    `deltas` counts the provider deltas joined in `text`. For a token event `emitted_at` is when
    the oldest of them reached the worker (wall clock), so `now() - emitted_at` bounds every one
    of them's delay (docs/decisions/0014-adaptive-token-coalescing.md).
    """

    type: Literal["token"] = "token"
    text: str
    deltas: int = Field(default=1, ge=1)


class ToolCallEvent(StreamEvent):
    type: Literal["tool_call"] = "tool_call"
    org_id: UUID
    user_id: UUID
    call_id: UUID
    tool: str
    input: dict[str, Any]


class ToolResultEvent(StreamEvent):
    type: Literal["tool_result"] = "tool_result"
    org_id: UUID
    user_id: UUID
    call_id: UUID
    tool: str
    input: dict[str, Any]
    output: dict[str, Any]
    is_error: bool
    latency_ms: float


class CompleteEvent(StreamEvent):
    type: Literal["complete"] = "complete"
    org_id: UUID
    user_id: UUID
    text: str
    # `stopped`: the user stopped it; `text` is what was generated until then.
    status: Literal["complete", "stopped"] = "complete"
    # Who answered: a model id (with its provider) for Tier 2, a tool name for Tier 1.
    model: str | None = None
    provider: str | None = None
    tool: str | None = None
    usage: Usage | None = None
    llm_call: LlmCall | None = None
    hops: HopTimes | None = None


class ErrorEvent(StreamEvent):
    type: Literal["error"] = "error"
    org_id: UUID
    user_id: UUID
    code: str  # an ErrorCode; plain text on the broker, so a newer code never fails a reader
    message: str
    retryable: bool = False
    # Seconds to wait before trying again, when the failure said so (a rate limit's Retry-After).
    retry_after: float | None = None
    # Whatever text was generated before the failure, and the call that produced it.
    partial_text: str = ""
    llm_call: LlmCall | None = None
    hops: HopTimes | None = None


class DeliveredEvent(SessionEvent):
    """A gateway handed an answer's first event to a socket (for the message's timeline)."""

    type: Literal["delivered"] = "delivered"
    correlation_id: UUID
    message_id: UUID
    org_id: UUID
    seq: int = Field(ge=1)
    delivered_at: float


class SessionEndedEvent(SessionEvent):
    type: Literal["session_ended"] = "session_ended"
    reason: Literal["idle_timeout"]


class RetryingEvent(SessionEvent):
    """An answer starts again (attempt `attempt`, from seq 1): discard what the earlier
    attempt streamed. Published by the worker that takes over a redelivered request."""

    type: Literal["retrying"] = "retrying"
    correlation_id: UUID
    message_id: UUID
    org_id: UUID
    user_id: UUID
    attempt: int = Field(ge=2)
    reason: str


class QueuedEvent(SessionEvent):
    """An answer waits for the session's answer in progress (`BUSY_POLICY=queue`)."""

    type: Literal["queued"] = "queued"
    correlation_id: UUID
    message_id: UUID
    org_id: UUID
    user_id: UUID
    behind_message_id: UUID | None = None


class ProgressEvent(SessionEvent):
    """A running model call's usage so far (every few seconds), or the final usage of a call
    that was interrupted. Only history consumes it: the `llm_calls` row then records what was
    generated even if the worker dies before the call ends."""

    type: Literal["progress"] = "progress"
    correlation_id: UUID
    message_id: UUID
    org_id: UUID
    user_id: UUID
    attempt: int = Field(default=1, ge=1)
    llm_call: LlmCall


# The events history writes. `delivered` only feeds the message's timeline.
PersistedEvent = (
    UserMessage
    | RoutedEvent
    | ToolCallEvent
    | ToolResultEvent
    | CompleteEvent
    | ErrorEvent
    | DeliveredEvent
    | ProgressEvent
)
# The events only the sockets of the session see.
LiveEvent = TokenEvent | SessionEndedEvent | RetryingEvent | QueuedEvent
AnySessionEvent = Annotated[PersistedEvent | LiveEvent, Field(discriminator="type")]
session_event_adapter: TypeAdapter[AnySessionEvent] = TypeAdapter(AnySessionEvent)

# The final events of an answer: each ends it, frees its session's turn and its budget hold.
FinalEvent = CompleteEvent | ErrorEvent
# What the worker streaming an answer can replay to a client that missed part of it.
ReplayedEvent = Annotated[TokenEvent | CompleteEvent | ErrorEvent, Field(discriminator="type")]


def event_type(model: type[BaseModel]) -> str:
    """The `type` of a session event class (its routing key's last word)."""
    default = model.model_fields["type"].default
    assert isinstance(default, str), f"{model.__name__} has no type"
    return default


PERSISTED_EVENTS: Final[tuple[str, ...]] = tuple(event_type(m) for m in get_args(PersistedEvent))
LIVE_EVENTS: Final[tuple[str, ...]] = tuple(event_type(m) for m in get_args(LiveEvent))
