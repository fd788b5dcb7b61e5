"""What every message on the broker is built from: the versioned base, who asks, what it cost.

Every model carries `v` (the contract version). Statuses are defined here once, as `Literal`s,
with the final ones derived from them: the history service's SQL and the page use these tuples.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Final, Literal, get_args
from uuid import UUID

from pydantic import BaseModel, ConfigDict

CONTRACT_VERSION: Literal[1] = 1


def now() -> float:
    """Wall-clock time in seconds, the unit of every timestamp on the broker."""
    return time.time()


class Contract(BaseModel):
    """A message on the broker. Unknown fields are ignored, so a newer sender's extra field
    does not break an older reader."""

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
    # Every field is serialized, defaults included (the page's generated types say so).
    model_config = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)


# -- statuses ------------------------------------------------------------------------------------

# A message: a user's is `complete` when accepted; an answer is `pending` until its final event.
# `stopped`: the user stopped the answer; its text is what was generated until then.
MessageStatus = Literal["pending", "complete", "error", "stopped"]
FINAL_MESSAGE_STATUSES: Final[tuple[MessageStatus, ...]] = tuple(
    status for status in get_args(MessageStatus) if status != "pending"
)

# A model call: `streaming` while a worker reports its progress; `interrupted` once its worker
# stopped or lost the broker mid-stream (the answer went to another attempt). Those two are not
# final: a final status is never changed again.
CallStatus = Literal["ok", "error", "stopped", "streaming", "interrupted"]
FINAL_CALL_STATUSES: Final[tuple[CallStatus, ...]] = ("ok", "error", "stopped")


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


class HopTimes(BaseModel):
    """When the worker that answered reached each hop of the turn (epoch seconds)."""

    model_config = ConfigDict(frozen=True)

    queued_at: float | None = None  # the orchestrator handed the work on
    started_at: float | None = None  # the worker took it from its queue
    model_called_at: float | None = None  # the model was asked (Tier 2)
    first_output_at: float | None = None  # the answer's first event (first token, or tool call)
