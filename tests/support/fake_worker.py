"""A stand-in LLM worker for gateway tests: it streams the events a test tells it to on the
session's routing keys, keeps them, and answers `ReplayRequest`s on `{prefix}.llm-control` as
docs/decisions/0006 says the real worker does; it records the `StopRequest`s it hears."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractIncomingMessage,
)

from chat_contracts.base import UserRef
from chat_contracts.control import ReplayReply, ReplayRequest, StopRequest, worker_control_adapter
from chat_contracts.events import CompleteEvent, RetryingEvent, RoutedEvent, TokenEvent
from chat_contracts.topology import Topology, session_key


@dataclass
class Answer:
    """One assistant message the fake worker streams."""

    session_id: UUID
    message_id: UUID
    user: UserRef
    correlation_id: UUID = field(default_factory=uuid4)
    attempt: int = 1
    events: list[TokenEvent | CompleteEvent] = field(default_factory=list)

    def token(self, seq: int, text: str | None = None) -> TokenEvent:
        return TokenEvent(
            **self._position(seq), text=text if text is not None else f"t{self.attempt}.{seq} "
        )

    def _position(self, seq: int) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "correlation_id": self.correlation_id,
            "message_id": self.message_id,
            "seq": seq,
            "attempt": self.attempt,
        }

    def complete(self, seq: int) -> CompleteEvent:
        text = "".join(e.text for e in self.events if isinstance(e, TokenEvent))
        return CompleteEvent(
            **self._position(seq),
            org_id=self.user.org_id,
            user_id=self.user.user_id,
            text=text,
        )


class FakeWorker:
    def __init__(self, amqp_url: str, prefix: str) -> None:
        self._amqp_url = amqp_url
        self._topology = Topology(prefix)
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._events: AbstractExchange | None = None
        self.answers: dict[UUID, Answer] = {}
        self.stops: asyncio.Queue[StopRequest] = asyncio.Queue()
        self.replay_requests: list[ReplayRequest] = []
        # Awaited when a replay is asked, before it is answered (to publish live meanwhile);
        # `on_request` for every replay request, also those of answers it does not hold.
        self.before_reply: Callable[[ReplayRequest], Awaitable[None]] | None = None
        self.on_request: Callable[[ReplayRequest], Awaitable[None]] | None = None

    async def start(self) -> None:
        self._connection = await aio_pika.connect(self._amqp_url)
        self._channel = await self._connection.channel(publisher_confirms=True)
        self._events = await self._channel.get_exchange(self._topology.events.name)
        control = await self._channel.get_exchange(self._topology.llm_control.name)
        queue = await self._channel.declare_queue(
            self._topology.llm_control_queue(uuid4().hex[:8]).name, exclusive=True
        )
        await queue.bind(control)
        await queue.consume(self._on_control, no_ack=True)

    async def stop(self) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def publish(
        self, event: TokenEvent | CompleteEvent | RoutedEvent | RetryingEvent
    ) -> None:
        """A session event, on its routing key (as a worker or the orchestrator publishes)."""
        assert self._events is not None
        await self._events.publish(
            aio_pika.Message(event.model_dump_json().encode(), content_type="application/json"),
            routing_key=session_key(event.session_id, event.type),
        )

    async def route(self, answer: Answer, user_message_id: UUID) -> None:
        """What the orchestrator publishes: history then shows the answer `pending`."""
        self.answers[answer.message_id] = answer
        await self.publish(
            RoutedEvent(
                session_id=answer.session_id,
                correlation_id=answer.correlation_id,
                message_id=answer.message_id,
                user_message_id=user_message_id,
                org_id=answer.user.org_id,
                user_id=answer.user.user_id,
                tier=2,
                routed_at=time.time(),
            )
        )

    async def stream(self, answer: Answer, *seqs: int) -> None:
        for seq in seqs:
            event = answer.token(seq)
            answer.events.append(event)
            await self.publish(event)

    async def finish(self, answer: Answer) -> CompleteEvent:
        event = answer.complete(len(answer.events) + 1)
        answer.events.append(event)
        await self.publish(event)
        return event

    async def retry(self, answer: Answer) -> None:
        """Start the answer over as its next attempt (its first worker "died")."""
        answer.attempt += 1
        answer.events = []
        await self.publish(
            RetryingEvent(
                session_id=answer.session_id,
                correlation_id=answer.correlation_id,
                message_id=answer.message_id,
                org_id=answer.user.org_id,
                user_id=answer.user.user_id,
                attempt=answer.attempt,
                reason="worker lost",
            )
        )

    async def _on_control(self, message: AbstractIncomingMessage) -> None:
        request = worker_control_adapter.validate_json(message.body)
        if isinstance(request, StopRequest):
            self.stops.put_nowait(request)
            return
        self.replay_requests.append(request)
        if self.on_request is not None:
            await self.on_request(request)
        answer = self.answers.get(request.message_id)
        if answer is None or (answer.session_id, answer.user.user_id, answer.user.org_id) != (
            request.session_id,
            request.user_id,
            request.org_id,
        ):
            return  # not ours (or not the asker's): stay silent
        if self.before_reply is not None:
            await self.before_reply(request)
        after = request.after_seq if request.attempt == answer.attempt else 0
        reply = ReplayReply(
            message_id=answer.message_id,
            attempt=answer.attempt,
            events=[event for event in answer.events if event.seq > after],
            ended=bool(answer.events) and isinstance(answer.events[-1], CompleteEvent),
        )
        assert self._channel is not None
        await self._channel.default_exchange.publish(
            aio_pika.Message(
                reply.model_dump_json().encode(), correlation_id=message.correlation_id
            ),
            routing_key=message.reply_to or "",
        )
