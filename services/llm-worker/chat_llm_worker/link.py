"""The worker's own aio-pika connection, for what is on the per-token and per-answer hot path.

- token events: raw aio-pika on a confirm channel, ~1.4x less CPU per message than FastStream's
  publish (docs/benchmarks.md), and not mandatory: a token for a session nobody is watching any
  more is dropped by the broker instead of being returned to the worker;
- history questions, any number in flight (`chat_shared.rpc.RpcClient`), two per answer.

FastStream keeps the rest: consuming LLM requests and publishing `complete` / `error`.
"""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import aio_pika
from aio_pika.abc import AbstractExchange, AbstractRobustConnection

from chat_llm_worker.settings import LlmWorkerSettings
from chat_shared.contracts import TokenEvent
from chat_shared.rpc import RpcClient
from chat_shared.topology import Topology, session_key


class WorkerLink:
    def __init__(self, settings: LlmWorkerSettings) -> None:
        self._settings = settings
        self._topology = Topology(settings.broker_prefix)
        self.replica_id = uuid4().hex[:12]
        self._connection: AbstractRobustConnection | None = None
        self._events: AbstractExchange | None = None
        self.rpc = RpcClient(f"{self._topology.prefix}.llm-worker.{self.replica_id}.replies")

    @property
    def connected(self) -> bool:
        return self._connection is not None and not self._connection.is_closed

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(
            self._settings.amqp_url,
            client_properties={"connection_name": f"llm-worker-{self.replica_id}"},
        )
        await self.rpc.start(await self._connection.channel(publisher_confirms=False))
        events_channel = await self._connection.channel(publisher_confirms=True)
        self._events = await events_channel.get_exchange(self._topology.events.name)

    async def publish_token(self, event: TokenEvent, headers: dict[str, Any] | None = None) -> None:
        """Publish a token event and wait for the broker's confirm (the batcher's signal)."""
        assert self._events is not None, "the link is not started"
        await self._events.publish(
            aio_pika.Message(
                event.model_dump_json().encode(),
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.NOT_PERSISTENT,
                headers=headers,
            ),
            routing_key=session_key(event.session_id, event.type),
            mandatory=False,
        )

    async def stop(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
