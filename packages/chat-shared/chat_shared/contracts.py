"""Every message that travels on the broker, as versioned pydantic models.

Three families:
- work: what one service hands another to do (`UserMessage`, `ToolRequest`, `LlmRequest`);
- session events: what happened in a session, on `session.<id>.<type>` (`TokenEvent`, ...);
- history RPC: questions to the history service and their answers.

Every model carries `v` (the contract version), the `session_id` and the `correlation_id` of
the user message it belongs to; stream events carry `seq`, counting from 1 per assistant
message.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

CONTRACT_VERSION: Literal[1] = 1


def now() -> float:
    """Wall-clock time in seconds, the unit of every timestamp on the broker."""
    return time.time()


class Contract(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    v: Literal[1] = CONTRACT_VERSION


class UserRef(BaseModel):
    """Who is asking. Always taken from the verified token, never from a client frame."""

    model_config = ConfigDict(frozen=True)

    user_id: UUID
    org_id: UUID
    email: str
    name: str


class Usage(BaseModel):
    model_config = ConfigDict(frozen=True)

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)


# `streaming`: a progress report of a call still running (issue 8); `interrupted`: the call's
# worker stopped or lost its broker connection mid-stream and the turn went to another attempt.
CallStatus = Literal["ok", "error", "stopped", "streaming", "interrupted"]


class LlmCall(BaseModel):
    """What the history service records about one call to a model."""

    model_config = ConfigDict(frozen=True)

    call_id: UUID
    provider: str
    model: str
    status: CallStatus
    usage: Usage
    ttft_ms: float | None
    total_ms: float
    error_code: str | None = None


# -- work ----------------------------------------------------------------------------------


class UserMessage(Contract):
    """A user's message: the orchestrator's work and a session event in one."""

    type: Literal["user_message"] = "user_message"
    session_id: UUID
    correlation_id: UUID
    message_id: UUID
    reply_message_id: UUID
    client_message_id: str
    user: UserRef
    text: str
    received_at: float


class ToolRequest(Contract):
    type: Literal["tool_request"] = "tool_request"
    session_id: UUID
    correlation_id: UUID
    message_id: UUID  # the assistant message the tool's answer becomes
    call_id: UUID
    tool: str
    input: dict[str, Any]
    user: UserRef
    # When the orchestrator handed the work on (the start of its queue wait).
    queued_at: float | None = None


class LlmRequest(Contract):
    type: Literal["llm_request"] = "llm_request"
    session_id: UUID
    correlation_id: UUID
    message_id: UUID  # the assistant message to stream
    user_message_id: UUID
    text: str
    user: UserRef
    # When the orchestrator handed the work on (the start of its queue wait).
    queued_at: float | None = None


# -- session events --------------------------------------------------------------------------


class SessionEvent(Contract):
    session_id: UUID


class StreamEvent(SessionEvent):
    """An event of one assistant message."""

    correlation_id: UUID
    message_id: UUID
    seq: int = Field(ge=1)
    # Which delivery of the work produced it: a turn retried on another worker (its first
    # worker died or lost the broker) streams again from seq 1 with the next attempt.
    attempt: int = Field(default=1, ge=1)
    # When the worker published it (set by `chat_shared.runtime.publish_event`).
    emitted_at: float | None = None


class HopTimes(BaseModel):
    """When the worker that answered reached each hop of the turn (epoch seconds)."""

    model_config = ConfigDict(frozen=True)

    queued_at: float | None = None  # the orchestrator handed the work on
    started_at: float | None = None  # the worker took it from its queue
    model_called_at: float | None = None  # the model was asked (Tier 2)
    first_output_at: float | None = None  # the answer's first event (first token, or tool call)


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
    of them's delay (issue 7, docs/decisions/0004-issue7-adaptive-token-coalescing.md).
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
    code: str
    message: str
    retryable: bool = False
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


AnySessionEvent = Annotated[
    UserMessage
    | RoutedEvent
    | TokenEvent
    | ToolCallEvent
    | ToolResultEvent
    | CompleteEvent
    | ErrorEvent
    | DeliveredEvent
    | SessionEndedEvent
    | RetryingEvent
    | QueuedEvent
    | ProgressEvent,
    Field(discriminator="type"),
]
session_event_adapter: TypeAdapter[AnySessionEvent] = TypeAdapter(AnySessionEvent)


# -- control ---------------------------------------------------------------------------------


class UserSignedOut(Contract):
    """Every gateway replica closes every socket of this user."""

    type: Literal["user_signed_out"] = "user_signed_out"
    user_id: UUID
    reason: Literal["logout", "disabled"]


# -- LLM worker control (fanout `{prefix}.llm-control`: every worker replica hears it) --------


class StopRequest(Contract):
    """Stop generating `message_id`. The worker streaming it (or, if none does yet, whichever
    worker later takes it from the queue) ends it with a `complete` of status `stopped`."""

    type: Literal["stop"] = "stop"
    session_id: UUID
    message_id: UUID
    org_id: UUID
    user_id: UUID
    requested_at: float


class ReplayRequest(Contract):
    """Which events of `message_id` after `after_seq` (of `attempt`) did a client miss?

    Sent with `reply_to`; only the worker that streams (or recently streamed) the message
    answers, with a `ReplayReply`. Nobody answers for a message no worker holds."""

    type: Literal["replay"] = "replay"
    session_id: UUID
    message_id: UUID
    org_id: UUID
    user_id: UUID
    attempt: int = Field(default=1, ge=1)
    after_seq: int = Field(default=0, ge=0)


AnyWorkerControl = Annotated[StopRequest | ReplayRequest, Field(discriminator="type")]
worker_control_adapter: TypeAdapter[AnyWorkerControl] = TypeAdapter(AnyWorkerControl)

ReplayedEvent = Annotated[TokenEvent | CompleteEvent | ErrorEvent, Field(discriminator="type")]


class ReplayReply(Contract):
    """The events of the message's current attempt after the asked seq, in order.

    If `attempt` differs from the one asked, `events` start at seq 1 of this attempt (the
    client must discard what it has). `ended`: the last event is the answer's final one."""

    message_id: UUID
    attempt: int
    events: list[ReplayedEvent] = Field(default_factory=list)
    ended: bool = False


# -- history RPC ---------------------------------------------------------------------------


class HistoryToolCall(BaseModel):
    call_id: UUID
    tool: str
    input: dict[str, Any]
    output: dict[str, Any] | None
    is_error: bool


class HistoryMessage(BaseModel):
    """A message as the history service serves it back."""

    message_id: UUID
    role: Literal["user", "assistant"]
    text: str
    status: str
    created_at: float
    model: str | None = None
    provider: str | None = None
    tool: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    tool_calls: list[HistoryToolCall] = Field(default_factory=list)


class OpenSession(Contract):
    """Start a session (no id) or restore one the asking user owns."""

    op: Literal["open_session"] = "open_session"
    org_id: UUID
    user_id: UUID
    session_id: UUID | None = None
    history_limit: int = 200


class SessionSnapshot(Contract):
    status: Literal["ok", "forbidden"]
    session_id: UUID | None = None
    ended: bool = False
    messages: list[HistoryMessage] = Field(default_factory=list)


class GetContext(Contract):
    """The earlier turns of a session, as context for a model."""

    op: Literal["get_context"] = "get_context"
    org_id: UUID
    user_id: UUID
    session_id: UUID
    exclude_message_id: UUID
    limit: int = 20


class ContextTurn(BaseModel):
    role: Literal["user", "assistant"]
    text: str


class ContextReply(Contract):
    turns: list[ContextTurn]


class ReserveBudget(Contract):
    """Hold `amount_usd` of the org's monthly budget for one LLM call."""

    op: Literal["reserve_budget"] = "reserve_budget"
    org_id: UUID
    message_id: UUID
    amount_usd: Decimal


class BudgetReply(Contract):
    allowed: bool
    budget_usd: Decimal
    spent_usd: Decimal
    reserved_usd: Decimal


class GetTimeline(Contract):
    """The timeline of one assistant message, for the user who owns it."""

    op: Literal["get_timeline"] = "get_timeline"
    org_id: UUID
    user_id: UUID
    message_id: UUID


class TimelineHop(BaseModel):
    name: str
    at: float  # epoch seconds
    offset_ms: float  # since `received`


class TimelineSegment(BaseModel):
    name: str
    start: str  # hop names
    end: str
    ms: float


class TimelineSummary(BaseModel):
    queue_wait_ms: float | None = None
    time_to_first_token_ms: float | None = None
    delivery_lag_ms: float | None = None
    first_output_seen_ms: float | None = None
    total_ms: float | None = None


class MessageTimeline(BaseModel):
    """Where one answer's time went. docs/observability.md describes every field."""

    message_id: UUID
    correlation_id: UUID
    trace_id: str | None = None
    tier: int | None = None
    status: str
    hops: list[TimelineHop]
    segments: list[TimelineSegment]
    summary: TimelineSummary


class TimelineReply(Contract):
    status: Literal["ok", "not_found"]
    timeline: MessageTimeline | None = None


class ClaimTurn(Contract):
    """Take the session's turn for an answer: one answer streams per session at a time.

    The turn is free when no answer holds it, when `message_id` holds it already (a retried
    attempt), or when the holder is older than `stale_after_seconds` (its worker is gone).
    With `interrupt`, the turn is taken from the holder, whose id is returned so that the
    caller can stop it. History frees the turn when it persists the holder's final event."""

    op: Literal["claim_turn"] = "claim_turn"
    org_id: UUID
    user_id: UUID
    session_id: UUID
    message_id: UUID
    interrupt: bool = False
    stale_after_seconds: float = 300


class TurnReply(Contract):
    status: Literal["claimed", "busy"]
    # busy: the answer holding the turn; claimed with interrupt: the answer taken over (if any).
    holder_message_id: UUID | None = None


class HoldPrice(BaseModel):
    """How to size a call's budget hold: `chat_shared.pricing.max_cost` of `prompt_chars`
    (the system prompt and the new message) plus the characters of the earlier turns sent."""

    input_per_mtok: Decimal
    output_per_mtok: Decimal
    prompt_chars: int
    max_tokens: int


class StartAnswer(Contract):
    """What an answer needs before its model call, in one round trip and one transaction: the
    session's turn (as `ClaimTurn`); once the turn is the answer's, its earlier turns (as
    `GetContext`, at most `context_limit`) and a budget hold sized for them (as `ReserveBudget`).

    One question instead of three keeps two history round trips (and transactions) off every
    answer's first token (docs/benchmarks.md)."""

    op: Literal["start_answer"] = "start_answer"
    org_id: UUID
    user_id: UUID
    session_id: UUID
    message_id: UUID
    exclude_message_id: UUID
    context_limit: int = 20
    interrupt: bool = False
    stale_after_seconds: float = 300
    hold: HoldPrice


class StartReply(Contract):
    turn: TurnReply
    # Only when the turn was claimed: the earlier turns, and whether the budget allows the call.
    turns: list[ContextTurn] = Field(default_factory=list)
    budget: BudgetReply | None = None


# GetContext, ReserveBudget and ClaimTurn are what LLM workers before StartAnswer ask; history
# still answers them, so workers and history can be upgraded in any order.
AnyHistoryRequest = Annotated[
    OpenSession | GetContext | ReserveBudget | GetTimeline | ClaimTurn | StartAnswer,
    Field(discriminator="op"),
]
history_request_adapter: TypeAdapter[AnyHistoryRequest] = TypeAdapter(AnyHistoryRequest)
