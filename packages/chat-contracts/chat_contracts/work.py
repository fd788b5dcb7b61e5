"""Work: what the orchestrator hands a worker to do, on the work exchange.

The user's message itself (`chat_contracts.events.UserMessage`) is the orchestrator's work.
"""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from chat_contracts.base import Contract, UserRef


class ToolRequest(Contract):
    """Run one tool: its events and the answer's text come from the tools service (Tier 1)."""

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
    """Answer a user message with a model (Tier 2)."""

    type: Literal["llm_request"] = "llm_request"
    session_id: UUID
    correlation_id: UUID
    message_id: UUID  # the assistant message to stream
    user_message_id: UUID
    text: str
    user: UserRef
    # When the orchestrator handed the work on (the start of its queue wait).
    queued_at: float | None = None


Work = ToolRequest | LlmRequest
