"""The tables this service owns, in the `chat` schema. Migrations: services/history/migrations."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

SCHEMA = "chat"
metadata = MetaData(schema=SCHEMA)


def _now() -> Column[object]:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())


sessions = Table(
    "sessions",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("org_id", UUID(as_uuid=True), nullable=False),
    Column("user_id", UUID(as_uuid=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_activity_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("ended_at", DateTime(timezone=True)),
    Column("end_reason", Text),
    Column("metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    # The answer holding the session's turn (one answer streams at a time) and since
    # when; freed when that answer's final event is persisted.
    Column("active_message_id", UUID(as_uuid=True)),
    Column("active_since", DateTime(timezone=True)),
    Index("sessions_owner", "org_id", "user_id"),
    Index(
        "sessions_open_by_activity", "last_activity_at", postgresql_where=text("ended_at IS NULL")
    ),
)

messages = Table(
    "messages",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("session_id", UUID(as_uuid=True), ForeignKey("sessions.id"), nullable=False),
    Column("org_id", UUID(as_uuid=True), nullable=False),
    Column("user_id", UUID(as_uuid=True), nullable=False),
    Column("role", Text, nullable=False),  # user | assistant
    Column("content", Text, nullable=False, server_default=""),
    # user messages: complete; assistant: pending → complete | error | stopped
    Column("status", Text, nullable=False),
    # The attempt (delivery of the work) whose final event set `status` and `content`.
    Column("attempt", Integer, nullable=False, server_default=text("1")),
    Column("correlation_id", UUID(as_uuid=True), nullable=False),
    Column("reply_to", UUID(as_uuid=True)),  # the user message an assistant message answers
    Column("tier", SmallInteger),
    Column("model", Text),
    Column("provider", Text),
    Column("tool", Text),
    Column("usage", JSONB),
    Column("error_code", Text),
    Column("error_message", Text),
    _now(),
    Column("completed_at", DateTime(timezone=True)),
    Index("messages_by_session", "session_id", "created_at"),
    Index("messages_by_correlation", "correlation_id"),
)

tool_audit = Table(
    "tool_audit",
    metadata,
    Column("call_id", UUID(as_uuid=True), primary_key=True),
    Column("message_id", UUID(as_uuid=True), nullable=False),
    Column("session_id", UUID(as_uuid=True), ForeignKey("sessions.id"), nullable=False),
    Column("org_id", UUID(as_uuid=True), nullable=False),
    Column("user_id", UUID(as_uuid=True), nullable=False),
    Column("tool", Text, nullable=False),
    Column("input", JSONB, nullable=False),
    Column("output", JSONB),
    Column("status", Text, nullable=False),  # running | ok | error
    Column("latency_ms", Float),
    Column("correlation_id", UUID(as_uuid=True), nullable=False),
    _now(),
    Column("completed_at", DateTime(timezone=True)),
    Index("tool_audit_by_message", "message_id"),
    Index("tool_audit_by_correlation", "correlation_id"),
)

llm_calls = Table(
    "llm_calls",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("message_id", UUID(as_uuid=True), nullable=False),
    Column("session_id", UUID(as_uuid=True), ForeignKey("sessions.id"), nullable=False),
    Column("org_id", UUID(as_uuid=True), nullable=False),
    Column("user_id", UUID(as_uuid=True), nullable=False),
    Column("provider", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("input_tokens", Integer, nullable=False),
    Column("output_tokens", Integer, nullable=False),
    Column("cost_usd", Numeric(14, 6), nullable=False),
    Column("ttft_ms", Float),
    Column("total_ms", Float, nullable=False),
    # ok | error | stopped (final); streaming (a progress report) | interrupted (never finished)
    Column("status", Text, nullable=False),
    Column("attempt", Integer, nullable=False, server_default=text("1")),
    Column("error_code", Text),
    Column("correlation_id", UUID(as_uuid=True), nullable=False),
    _now(),
    Index("llm_calls_by_org_month", "org_id", "created_at"),
    Index("llm_calls_by_correlation", "correlation_id"),
)

org_budgets = Table(
    "org_budgets",
    metadata,
    Column("org_id", UUID(as_uuid=True), primary_key=True),
    Column("monthly_budget_usd", Numeric(14, 4), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Money held for LLM calls in flight, so concurrent calls cannot spend the same dollars twice.
budget_holds = Table(
    "budget_holds",
    metadata,
    Column("message_id", UUID(as_uuid=True), primary_key=True),
    Column("org_id", UUID(as_uuid=True), nullable=False),
    Column("amount_usd", Numeric(14, 6), nullable=False),
    _now(),
    Index("budget_holds_by_org", "org_id", "created_at"),
)

# When each hop of a question's path happened, keyed by the assistant message
# (see chat_runtime.timeline).
# Written piecemeal by whichever event arrives, in any order; no foreign key for that reason.
message_timings = Table(
    "message_timings",
    metadata,
    Column("message_id", UUID(as_uuid=True), primary_key=True),
    Column("org_id", UUID(as_uuid=True), nullable=False),
    Column("correlation_id", UUID(as_uuid=True), nullable=False),
    Column("trace_id", Text),
    Column("received_at", DateTime(timezone=True)),
    Column("routed_at", DateTime(timezone=True)),
    Column("queued_at", DateTime(timezone=True)),
    Column("started_at", DateTime(timezone=True)),
    Column("model_called_at", DateTime(timezone=True)),
    Column("first_output_at", DateTime(timezone=True)),
    Column("first_output_delivered_at", DateTime(timezone=True)),
    Column("completed_at", DateTime(timezone=True)),
    Column("persisted_at", DateTime(timezone=True)),
)
