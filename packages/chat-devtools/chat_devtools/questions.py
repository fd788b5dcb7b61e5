"""Messages of one question and its answer, as the services publish them, for tests and
benchmarks."""

from __future__ import annotations

import time
from decimal import Decimal
from uuid import UUID, uuid4

from chat_contracts.base import LlmCall, Usage, UserRef
from chat_contracts.events import CompleteEvent, RoutedEvent, UserMessage
from chat_contracts.work import LlmRequest


def a_user() -> UserRef:
    return UserRef(user_id=uuid4(), org_id=uuid4(), email="a@example.com", name="A")


def a_question(user: UserRef, session_id: UUID) -> tuple[UserMessage, RoutedEvent, CompleteEvent]:
    correlation_id, question, answer = uuid4(), uuid4(), uuid4()
    message = UserMessage(
        session_id=session_id,
        correlation_id=correlation_id,
        message_id=question,
        reply_message_id=answer,
        client_message_id="c",
        user=user,
        text="hello",
        received_at=1_800_000_000.0,
    )
    routed = RoutedEvent(
        session_id=session_id,
        correlation_id=correlation_id,
        message_id=answer,
        user_message_id=question,
        org_id=user.org_id,
        user_id=user.user_id,
        tier=2,
        routed_at=1_800_000_000.1,
    )
    complete = CompleteEvent(
        session_id=session_id,
        correlation_id=correlation_id,
        message_id=answer,
        seq=3,
        org_id=user.org_id,
        user_id=user.user_id,
        text="hi there",
        model="m",
        provider="scripted",
        llm_call=LlmCall(
            call_id=uuid4(),
            provider="scripted",
            model="m",
            status="ok",
            usage=Usage(input_tokens=1, output_tokens=2, cost_usd=Decimal("0.01")),
            ttft_ms=1.0,
            total_ms=2.0,
        ),
    )
    return message, routed, complete


def a_user_message(text: str, user: UserRef | None = None) -> UserMessage:
    """A user's message in a new session, as the gateway publishes it."""
    return UserMessage(
        session_id=uuid4(),
        correlation_id=uuid4(),
        message_id=uuid4(),
        reply_message_id=uuid4(),
        client_message_id="c",
        user=user or a_user(),
        text=text,
        received_at=time.time(),
    )


def an_llm_request(text: str = "hi", user: UserRef | None = None) -> LlmRequest:
    """The orchestrator's Tier-2 work for a message in a new session."""
    return LlmRequest(
        session_id=uuid4(),
        correlation_id=uuid4(),
        message_id=uuid4(),
        user_message_id=uuid4(),
        text=text,
        user=user or a_user(),
    )
