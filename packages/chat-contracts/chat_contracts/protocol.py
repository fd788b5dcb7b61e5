"""The browser WebSocket protocol (v1), frame by frame. docs/protocol.md describes it for people;
the page's types (web/src/generated/protocol.ts) are generated from these models.

Client frames are parsed strictly (unknown fields are refused) so a mistake in a client is
reported, not silently ignored. Server frames are what the gateway sends.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from chat_contracts.base import Usage
from chat_contracts.codes import CloseCode, ErrorCode
from chat_contracts.history import HistoryMessage

PROTOCOL_VERSION = 1


# -- client → server -----------------------------------------------------------------------


class ClientFrame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ResumePoint(ClientFrame):
    """The last event a client has of an answer: `seq` of `attempt` (0 = none of it)."""

    message_id: UUID
    seq: int = Field(ge=0)
    attempt: int = Field(default=1, ge=1)


class JoinFrame(ClientFrame):
    type: Literal["join"]
    session_id: UUID | None = None
    # Rejoining mid-answer: send only what came after this point of that answer.
    after: ResumePoint | None = None


class StopFrame(ClientFrame):
    """Stop generating an answer of the socket's own session."""

    type: Literal["stop"]
    message_id: UUID


class SendFrame(ClientFrame):
    type: Literal["send"]
    text: str
    client_message_id: str = Field(min_length=1, max_length=100)


class PingFrame(ClientFrame):
    type: Literal["ping"]


AnyClientFrame = Annotated[
    JoinFrame | SendFrame | PingFrame | StopFrame, Field(discriminator="type")
]
client_frame_adapter: TypeAdapter[AnyClientFrame] = TypeAdapter(AnyClientFrame)


# -- server → client -----------------------------------------------------------------------


class ServerFrame(BaseModel):
    # Every field is sent, defaults included: the page's generated types say so.
    model_config = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)


class UserInfo(BaseModel):
    id: UUID
    org_id: UUID
    email: str
    name: str


class JoinedFrame(ServerFrame):
    type: Literal["joined"] = "joined"
    session_id: UUID
    user: UserInfo
    messages: list[HistoryMessage]
    # The session is over (idle timeout): its history is shown, the next `send` starts anew.
    ended: bool = False
    # Set when this session replaces one that had ended.
    previous_session_id: UUID | None = None


class AcceptedFrame(ServerFrame):
    type: Literal["accepted"] = "accepted"
    client_message_id: str
    message_id: UUID
    reply_message_id: UUID
    correlation_id: UUID
    session_id: UUID


class TokenFrame(ServerFrame):
    type: Literal["token"] = "token"
    message_id: UUID
    seq: int
    attempt: int = 1
    text: str
    # How many of the model's deltas `text` joins, and when the oldest reached the worker.
    deltas: int = 1
    emitted_at: float | None = None


class ToolCallFrame(ServerFrame):
    type: Literal["tool_call"] = "tool_call"
    message_id: UUID
    seq: int
    attempt: int = 1
    call_id: UUID
    tool: str
    input: dict[str, Any]


class ToolResultFrame(ServerFrame):
    type: Literal["tool_result"] = "tool_result"
    message_id: UUID
    seq: int
    attempt: int = 1
    call_id: UUID
    output: dict[str, Any]
    is_error: bool


class CompleteFrame(ServerFrame):
    type: Literal["complete"] = "complete"
    message_id: UUID
    seq: int
    attempt: int = 1
    # The whole answer: a client that missed tokens can always render it from here.
    text: str
    # `stopped`: the user stopped the answer; `text` is what was generated until then.
    status: Literal["complete", "stopped"] = "complete"
    model: str | None
    provider: str | None
    tool: str | None
    usage: Usage | None


class ErrorFrame(ServerFrame):
    type: Literal["error"] = "error"
    code: ErrorCode
    message: str
    message_id: UUID | None = None
    seq: int | None = None
    attempt: int | None = None
    client_message_id: str | None = None
    retryable: bool = False
    retry_after: float | None = None


class SessionEndedFrame(ServerFrame):
    type: Literal["session_ended"] = "session_ended"
    session_id: UUID
    reason: str


class PongFrame(ServerFrame):
    type: Literal["pong"] = "pong"


class HeartbeatFrame(ServerFrame):
    """Sent every `HEARTBEAT_SECONDS`: a client that hears nothing for twice that reconnects."""

    type: Literal["heartbeat"] = "heartbeat"
    at: float


class RetryingFrame(ServerFrame):
    """The answer starts again as attempt `attempt`: discard what was shown of it."""

    type: Literal["retrying"] = "retrying"
    message_id: UUID
    attempt: int
    message: str


class QueuedFrame(ServerFrame):
    """The answer waits for the answer in progress; it starts when that one ends."""

    type: Literal["queued"] = "queued"
    message_id: UUID
    behind_message_id: UUID | None = None


class ResyncFrame(ServerFrame):
    """What the client has of `message_id` cannot be continued without a gap.

    With `message`, the answer has ended: render it whole from this. Without, the answer is
    still being generated but its missed part is not available: discard the partial text and
    wait for the rest; the final `complete` carries the whole text."""

    type: Literal["resync"] = "resync"
    message_id: UUID
    reason: str
    message: HistoryMessage | None = None


AnyServerFrame = Annotated[
    JoinedFrame
    | AcceptedFrame
    | TokenFrame
    | ToolCallFrame
    | ToolResultFrame
    | CompleteFrame
    | ErrorFrame
    | SessionEndedFrame
    | PongFrame
    | HeartbeatFrame
    | RetryingFrame
    | QueuedFrame
    | ResyncFrame,
    Field(discriminator="type"),
]
server_frame_adapter: TypeAdapter[AnyServerFrame] = TypeAdapter(AnyServerFrame)

__all__ = [
    "PROTOCOL_VERSION",
    "AcceptedFrame",
    "AnyClientFrame",
    "AnyServerFrame",
    "ClientFrame",
    "CloseCode",
    "CompleteFrame",
    "ErrorCode",
    "ErrorFrame",
    "HeartbeatFrame",
    "JoinFrame",
    "JoinedFrame",
    "PingFrame",
    "PongFrame",
    "QueuedFrame",
    "ResumePoint",
    "ResyncFrame",
    "RetryingFrame",
    "SendFrame",
    "ServerFrame",
    "SessionEndedFrame",
    "StopFrame",
    "TokenFrame",
    "ToolCallFrame",
    "ToolResultFrame",
    "UserInfo",
    "client_frame_adapter",
    "server_frame_adapter",
]
