"""Publishing through a FastStream broker, with the broker's confirm: events and work.

A stream event is stamped first (its emit time and, if it ends the answer, its worker's hop
times: `chat_runtime.timeline`); every message is encoded by the service's `Wire`. Tokens take
the short way (no metric and, but for an answer's first, no trace): the LLM worker publishes
its own on its raw link (`chat_runtime.link`), this path serves tests and other publishers.
"""

from __future__ import annotations

import time
from typing import Any

from faststream.rabbit import RabbitBroker
from pydantic import BaseModel

from chat_contracts.events import SessionEvent, StreamEvent, TokenEvent
from chat_runtime.telemetry import instruments, observe_event
from chat_runtime.timeline import stamp
from chat_runtime.tracing import FIRST_TOKEN_HEADER
from chat_runtime.wire import CONTENT_TYPE, Wire


class Publisher:
    def __init__(self, broker: RabbitBroker, wire: Wire) -> None:
        self._broker = broker
        self.wire = wire

    async def publish(self, message: BaseModel) -> None:
        """Publish and wait for the broker's confirm."""
        if isinstance(message, StreamEvent):
            message = stamp(message)
            if isinstance(message, TokenEvent):
                await self._send(message, {FIRST_TOKEN_HEADER: "1"} if message.seq == 1 else None)
                return
        started = time.perf_counter()
        await self._send(message, None)
        kind = getattr(message, "type", type(message).__name__)
        instruments().publish_duration.record(time.perf_counter() - started, {"kind": kind})
        if isinstance(message, SessionEvent):
            observe_event(message)

    async def _send(self, message: BaseModel, headers: dict[str, Any] | None) -> None:
        envelope = self.wire.encode(message)
        await self._broker.publish(
            envelope.body,
            exchange=envelope.exchange,
            routing_key=envelope.routing_key,
            persist=envelope.persistent,
            content_type=CONTENT_TYPE,
            correlation_id=envelope.correlation_id,
            headers=headers,
        )
