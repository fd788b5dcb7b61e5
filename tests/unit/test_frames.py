"""Events become the frames the browser protocol defines: each frame takes the fields it
declares from its event, so a field added to both needs no mapping change."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from pydantic import BaseModel

from chat_contracts.codes import ErrorCode
from chat_contracts.events import (
    DeliveredEvent,
    ErrorEvent,
    RetryingEvent,
    TokenEvent,
)
from chat_contracts.protocol import ErrorFrame, RetryingFrame, TokenFrame
from chat_gateway.frames import _FILLED, FRAME_OF, outgoing, to_frame


def _ids() -> dict[str, Any]:
    return {"session_id": uuid4(), "correlation_id": uuid4(), "message_id": uuid4()}


def test_every_required_frame_field_comes_from_its_event_or_is_filled() -> None:
    for event, frame in FRAME_OF.items():
        for name, field in frame.model_fields.items():
            if field.is_required():
                assert name in event.model_fields or event in _FILLED, (frame.__name__, name)


def test_a_token_frame_takes_every_field_it_declares_from_its_event() -> None:
    token = TokenEvent(**_ids(), seq=3, attempt=2, text="abc", deltas=2, emitted_at=12.5)
    frame = to_frame(token)
    assert frame == TokenFrame(
        message_id=token.message_id, seq=3, attempt=2, text="abc", deltas=2, emitted_at=12.5
    )
    sent = outgoing(token)
    assert sent is not None
    assert (sent.message_id, sent.attempt, sent.seq, sent.final) == (token.message_id, 2, 3, False)


def test_an_error_code_the_page_does_not_know_is_sent_as_internal() -> None:
    common = {**_ids(), "seq": 1, "org_id": uuid4(), "user_id": uuid4(), "message": "m"}
    known = to_frame(ErrorEvent(**common, code="busy", retryable=True))
    unknown = to_frame(ErrorEvent(**common, code="from_a_newer_worker"))
    assert isinstance(known, ErrorFrame) and known.code is ErrorCode.BUSY and known.retryable
    assert isinstance(unknown, ErrorFrame) and unknown.code is ErrorCode.INTERNAL


def test_retrying_says_why_and_comes_before_the_attempts_events() -> None:
    retrying = RetryingEvent(**_ids(), org_id=uuid4(), user_id=uuid4(), attempt=2, reason="lost")
    frame = to_frame(retrying)
    assert isinstance(frame, RetryingFrame) and "attempt 2" in frame.message
    sent = outgoing(retrying)
    assert sent is not None and (sent.attempt, sent.seq) == (2, 0)


def test_events_for_the_services_only_become_no_frame() -> None:
    delivered = DeliveredEvent(**_ids(), org_id=uuid4(), seq=1, delivered_at=1.0)
    assert to_frame(delivered) is None and outgoing(delivered) is None
    assert all(
        isinstance(frame, type) and issubclass(frame, BaseModel) for frame in FRAME_OF.values()
    )
