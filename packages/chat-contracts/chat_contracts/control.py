"""Control: broadcasts that every replica of a service hears, and the replies to them.

- `UserSignedOut` on the `control` fanout: every gateway replica closes the user's sockets;
- `StopRequest` and `ReplayRequest` on the `llm-control` fanout: the worker holding the answer
  acts on them; a replay is answered with a `ReplayReply` to the asker's reply queue.
"""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field, TypeAdapter

from chat_contracts.base import Contract
from chat_contracts.events import ReplayedEvent


class UserSignedOut(Contract):
    """Every gateway replica closes every socket of this user."""

    type: Literal["user_signed_out"] = "user_signed_out"
    user_id: UUID
    reason: Literal["logout", "disabled"]


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


class ReplayReply(Contract):
    """The events of the message's current attempt after the asked seq, in order.

    If `attempt` differs from the one asked, `events` start at seq 1 of this attempt (the
    client must discard what it has). `ended`: the last event is the answer's final one."""

    message_id: UUID
    attempt: int
    events: list[ReplayedEvent] = Field(default_factory=list)
    ended: bool = False
