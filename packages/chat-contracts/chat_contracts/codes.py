"""The codes a client is told: `error.code` values and WebSocket close codes.

Both are part of the browser protocol (docs/protocol.md); `ErrorCode` also travels in
`ErrorEvent`, from the worker that failed to every socket of the session.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class ErrorCode(StrEnum):
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
    # A message sent while the session's answer streams, with `BUSY_POLICY=reject`: it was not
    # sent (its text is the client's to keep); stop the answer or wait, then send again.
    BUSY = "busy"
    # The message failed on every attempt and was set aside (dead-lettered).
    FAILED = "failed"


class CloseCode(IntEnum):
    """WebSocket close codes the gateway uses (4000-4999 are its own; docs/security.md)."""

    NORMAL = 1000
    REFUSED = 1008  # a handshake refused before the upgrade (the client sees HTTP 403)
    TOO_LARGE = 1009  # a frame over MAX_FRAME_BYTES
    SERVICE_RESTART = 1012  # the replica stops or lost the broker: reconnect (elsewhere)
    TOO_SLOW = 1013  # the client did not read its frames fast enough: reconnect later
    SIGNED_OUT = 4401  # token expired, signed out, or user disabled: sign in again
    SILENT = 4408  # nothing arrived from the client for CLIENT_SILENCE_SECONDS
    TOO_MANY_SOCKETS = 4429
