"""The browser WebSocket protocol (v1), frame by frame. docs/protocol.md describes it for people.

Client frames are parsed strictly (unknown fields are refused) so a mistake in a client is
reported, not silently ignored. Server frames are what the gateway sends.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from chat_shared.contracts import HistoryMessage, Usage

PROTOCOL_VERSION = 1


class ErrorCode:
    """Every `error.code` the server sends."""

    BAD_REQUEST = "bad_request"  # malformed frame; the socket stays usable
    NOT_JOINED = "not_joined"  # `send` before `join`
    FORBIDDEN = "forbidden"  # the session belongs to someone else (or does not exist)
    UNAVAILABLE = "unavailable"  # a backend did not answer; retry the same frame
    RATE_LIMITED = "rate_limited"  # too many messages; retry after `retry_after` seconds
    BUDGET_EXCEEDED = "budget_exceeded"
    LLM_RATE_LIMITED = "llm_rate_limited"
    LLM_UNAVAILABLE = "llm_unavailable"
    LLM_ERROR = "llm_error"
    TOOL_ERROR = "tool_error"
    INTERNAL = "internal"


# -- client → server -----------------------------------------------------------------------


class ClientFrame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JoinFrame(ClientFrame):
    type: Literal["join"]
    session_id: UUID | None = None


class SendFrame(ClientFrame):
    type: Literal["send"]
    text: str
    client_message_id: str = Field(min_length=1, max_length=100)


class PingFrame(ClientFrame):
    type: Literal["ping"]


AnyClientFrame = Annotated[JoinFrame | SendFrame | PingFrame, Field(discriminator="type")]
client_frame_adapter: TypeAdapter[AnyClientFrame] = TypeAdapter(AnyClientFrame)


# -- server → client -----------------------------------------------------------------------


class ServerFrame(BaseModel):
    model_config = ConfigDict(frozen=True)


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
    text: str
    # How many of the model's deltas `text` joins, and when the oldest reached the worker.
    deltas: int = 1
    emitted_at: float | None = None


class ToolCallFrame(ServerFrame):
    type: Literal["tool_call"] = "tool_call"
    message_id: UUID
    seq: int
    call_id: UUID
    tool: str
    input: dict[str, Any]


class ToolResultFrame(ServerFrame):
    type: Literal["tool_result"] = "tool_result"
    message_id: UUID
    seq: int
    call_id: UUID
    output: dict[str, Any]
    is_error: bool


class CompleteFrame(ServerFrame):
    type: Literal["complete"] = "complete"
    message_id: UUID
    seq: int
    text: str
    model: str | None
    provider: str | None
    tool: str | None
    usage: Usage | None


class ErrorFrame(ServerFrame):
    type: Literal["error"] = "error"
    code: str
    message: str
    message_id: UUID | None = None
    seq: int | None = None
    client_message_id: str | None = None
    retryable: bool = False
    retry_after: float | None = None


class SessionEndedFrame(ServerFrame):
    type: Literal["session_ended"] = "session_ended"
    session_id: UUID
    reason: str


class PongFrame(ServerFrame):
    type: Literal["pong"] = "pong"
