"""The events of an answer's attempt other than its tokens: how it ended, and what it reports
on the way (`retrying`, `queued`, `progress`).

A final event (`complete` or `error`) is stamped and recorded in the answer's `Generation` once
published, so that a replay sends it exactly as it was published.
"""

from __future__ import annotations

import logging
from typing import Any

from chat_contracts.base import LlmCall
from chat_contracts.events import (
    CompleteEvent,
    ErrorEvent,
    ProgressEvent,
    QueuedEvent,
    RetryingEvent,
)
from chat_llm_worker.generations import Generation
from chat_llm_worker.messages import RETRYING_MESSAGE
from chat_runtime.publisher import Publisher
from chat_runtime.timeline import stamp

log = logging.getLogger("chat_llm_worker")


def ids(gen: Generation) -> dict[str, Any]:
    """The fields that say whose answer an event belongs to."""
    request = gen.request
    return {
        "session_id": request.session_id,
        "correlation_id": request.correlation_id,
        "message_id": request.message_id,
        "org_id": request.user.org_id,
        "user_id": request.user.user_id,
    }


class AnswerEvents:
    def __init__(self, publisher: Publisher) -> None:
        self._publisher = publisher

    async def final(self, gen: Generation, event: CompleteEvent | ErrorEvent) -> None:
        # Stamped here so that a replay sends it as it was published (stamping is idempotent).
        stamped = stamp(event)
        assert isinstance(stamped, CompleteEvent | ErrorEvent)
        await self._publisher.publish(stamped)
        gen.record(stamped)

    async def fail(
        self,
        gen: Generation,
        code: str,
        message: str,
        *,
        retryable: bool = False,
        retry_after: float | None = None,
        partial_text: str = "",
        llm_call: LlmCall | None = None,
    ) -> None:
        event = ErrorEvent(
            **ids(gen),
            seq=gen.seq + 1,
            attempt=gen.attempt,
            code=code,
            message=message,
            retryable=retryable,
            retry_after=retry_after,
            partial_text=partial_text,
            llm_call=llm_call,
        )
        await self.final(gen, event)

    async def stopped(self, gen: Generation, text: str = "", call: LlmCall | None = None) -> None:
        event = CompleteEvent(
            **ids(gen),
            seq=gen.seq + 1,
            attempt=gen.attempt,
            text=text,
            status="stopped",
            model=call.model if call else None,
            provider=call.provider if call else None,
            usage=call.usage if call else None,
            llm_call=call,
        )
        await self.final(gen, event)
        log.info("answer stopped", extra={"message_id": str(gen.request.message_id)})

    async def complete(self, gen: Generation, text: str, call: LlmCall) -> None:
        event = CompleteEvent(
            **ids(gen),
            seq=gen.seq + 1,
            attempt=gen.attempt,
            text=text,
            model=call.model,
            provider=call.provider,
            usage=call.usage,
            llm_call=call,
        )
        await self.final(gen, event)

    async def retrying(self, gen: Generation) -> None:
        await self._publisher.publish(
            RetryingEvent(**ids(gen), attempt=gen.attempt, reason=RETRYING_MESSAGE)
        )

    async def queued(self, gen: Generation, behind: Any) -> None:
        await self._publisher.publish(QueuedEvent(**ids(gen), behind_message_id=behind))

    async def publish(self, event: ProgressEvent) -> None:
        await self._publisher.publish(event)

    @staticmethod
    def progress(gen: Generation, call: LlmCall) -> ProgressEvent:
        return ProgressEvent(**ids(gen), attempt=gen.attempt, llm_call=call)
