"""Questions to the history service and its answers (request/reply on the `history.rpc` queue).

Askers: the gateway (a session to open, a message's timeline) and the LLM worker (what an
answer needs before its model call, `StartAnswer`). Replies go to the asker's reply queue.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from chat_contracts.base import Contract, MessageStatus


class HistoryToolCall(BaseModel):
    call_id: UUID
    tool: str
    input: dict[str, Any]
    output: dict[str, Any] | None
    is_error: bool


class HistoryMessage(BaseModel):
    """A message as the history service serves it back."""

    # Every field is serialized, defaults included (the page's generated types say so).
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    message_id: UUID
    role: Literal["user", "assistant"]
    text: str
    status: MessageStatus
    created_at: float  # seconds since the epoch
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


class ContextMessage(BaseModel):
    """An earlier message of the session, as context for a model."""

    role: Literal["user", "assistant"]
    text: str


class BudgetReply(Contract):
    allowed: bool
    budget_usd: Decimal
    spent_usd: Decimal
    reserved_usd: Decimal


class TurnReply(Contract):
    """Who holds the session's turn (one answer streams per session at a time)."""

    status: Literal["claimed", "busy"]
    # busy: the answer holding the turn; claimed with interrupt: the answer taken over (if any).
    holder_message_id: UUID | None = None


class HoldPrice(BaseModel):
    """How to size a call's budget hold: `chat_runtime.pricing.max_cost` of `prompt_chars`
    (the system prompt and the new message) plus the characters of the earlier messages sent."""

    input_per_mtok: Decimal
    output_per_mtok: Decimal
    prompt_chars: int
    max_tokens: int


class StartAnswer(Contract):
    """What an answer needs before its model call, in one round trip: the session's turn; once
    the turn is the answer's, its earlier messages (at most `context_limit`) and a budget hold
    sized for them.

    The turn is free when no answer holds it, when `message_id` holds it already (a retried
    attempt), or when the holder is older than `stale_after_seconds` (its worker is gone). With
    `interrupt`, the turn is taken from the holder, whose id is returned so that the caller can
    stop it. History frees the turn when it persists the holder's final event."""

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
    # Only when the turn was claimed: the earlier messages, and whether the budget allows the call.
    context: list[ContextMessage] = Field(default_factory=list)
    budget: BudgetReply | None = None


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
    status: MessageStatus
    hops: list[TimelineHop]
    segments: list[TimelineSegment]
    summary: TimelineSummary


class TimelineReply(Contract):
    status: Literal["ok", "not_found"]
    timeline: MessageTimeline | None = None


AnyHistoryRequest = Annotated[OpenSession | GetTimeline | StartAnswer, Field(discriminator="op")]
history_request_adapter: TypeAdapter[AnyHistoryRequest] = TypeAdapter(AnyHistoryRequest)
HistoryReply = SessionSnapshot | StartReply | TimelineReply
