"""The worker's own aio-pika connection, for what is on the per-answer hot path.

- history questions, any number in flight (`chat_shared.rpc.RpcClient`), one pair per answer;
FastStream keeps the rest: consuming LLM requests and publishing `complete` / `error`.
"""

from __future__ import annotations

from uuid import uuid4

import aio_pika
from aio_pika.abc import AbstractRobustConnection

from chat_llm_worker.settings import LlmWorkerSettings
from chat_shared.rpc import RpcClient
from chat_shared.topology import Topology


class WorkerLink:
    def __init__(self, settings: LlmWorkerSettings) -> None:
        self._settings = settings
        self._topology = Topology(settings.broker_prefix)
        self.replica_id = uuid4().hex[:12]
        self._connection: AbstractRobustConnection | None = None
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

    async def stop(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
