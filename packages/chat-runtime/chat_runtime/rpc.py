"""Request/reply over RabbitMQ with any number of requests in flight at once.

Each client owns an exclusive, auto-deleted reply queue and matches replies to requests by
correlation id. FastStream's `broker.request` is not used for this: it holds one lock per broker
for the whole round trip (faststream 0.7, `_RPCCallback`), so concurrent requests wait for one
another; an LLM worker streaming many answers then starts them one history round trip at a time.
"""

from __future__ import annotations

import asyncio
from uuid import uuid4

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage, AbstractQueue

from chat_runtime.service import is_consuming


class RpcClient:
    def __init__(self, reply_queue: str) -> None:
        self._reply_queue_name = reply_queue
        self._channel: AbstractChannel | None = None
        self._reply_queue: AbstractQueue | None = None
        self._consumer_tag: str | None = None
        self._pending: dict[str, asyncio.Future[bytes]] = {}
        self._exchanges: dict[str, AbstractExchange] = {}

    async def start(self, channel: AbstractChannel) -> None:
        """Declare the reply queue on `channel` (publisher confirms are not needed: the reply
        is the confirmation) and start consuming it."""
        self._channel = channel
        self._reply_queue = await channel.declare_queue(
            self._reply_queue_name, exclusive=True, auto_delete=True
        )
        self._consumer_tag = await self._reply_queue.consume(self._on_reply, no_ack=True)

    async def consuming(self) -> bool:
        """Does RabbitMQ still deliver replies to this client (readiness)?"""
        if self._channel is None:
            return False
        return await is_consuming(self._channel, self._consumer_tag)

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        future = self._pending.pop(message.correlation_id or "", None)
        if future is not None and not future.done():
            future.set_result(message.body)

    async def _exchange(self, name: str | None) -> AbstractExchange:
        assert self._channel is not None
        if name is None:
            return self._channel.default_exchange
        exchange = self._exchanges.get(name)
        if exchange is None:
            exchange = self._exchanges[name] = await self._channel.get_exchange(name, ensure=False)
        return exchange

    async def ask(
        self, queue: str, body: bytes, expires_in: float, *, exchange: str | None = None
    ) -> bytes:
        """Send `body` to `queue` and return the reply; `TimeoutError` after `expires_in` seconds.

        The request expires in the queue then too: nobody would wait for its answer. With
        `exchange` (a fanout, say) the request goes there with routing key `queue`, and the first
        reply wins; a fanout nobody replies from times out.
        """
        assert self._channel is not None and self._reply_queue is not None, "start() it first"
        correlation_id = uuid4().hex
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = future
        try:
            async with asyncio.timeout(expires_in):
                target = await self._exchange(exchange)
                await target.publish(
                    aio_pika.Message(
                        body,
                        content_type="application/json",
                        correlation_id=correlation_id,
                        reply_to=self._reply_queue.name,
                        expiration=expires_in,
                    ),
                    routing_key=queue,
                )
                return await future
        finally:
            self._pending.pop(correlation_id, None)
