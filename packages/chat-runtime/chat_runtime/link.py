"""A replica's own link to the broker, on raw aio-pika: for what is on the per-token hot path.

One robust connection with three channels:
- publishing, with publisher confirms (every message encoded by the service's `Wire`; a token
  can leave without waiting for its frame to be written, `publish_unwaited`);
- the replica's private queue (exclusive, auto-deleted: gone with the connection), consumed with
  aiormq's consumer directly: aio-pika's wraps each delivery in an IncomingMessage and a second
  task, half as much again per message (docs/benchmarks.md);
- request/reply (`chat_runtime.rpc.RpcClient`), any number of questions in flight.

The gateway (`chat_gateway.bridge`) and the LLM worker (`chat_llm_worker.link`) extend it with
what each receives and asks. FastStream serves the rest of the services' messages.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any, cast

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from aiormq.abc import DeliveredMessage
from pydantic import BaseModel

from chat_contracts.topology import Queue
from chat_runtime.declare import declare_queue
from chat_runtime.rpc import RpcClient
from chat_runtime.service import is_consuming
from chat_runtime.wire import Envelope, Wire

log = logging.getLogger(__name__)

# How often `wait_connected` looks: no callback tells when every channel is restored.
POLL_SECONDS = 0.05


class RawLink:
    """Subclasses handle what arrives on the private queue (`on_message`) and what a lost
    connection means to them (`on_lost`, `on_restored`)."""

    def __init__(
        self,
        amqp_url: str,
        wire: Wire,
        replica_id: str,
        private_queue: Queue,
        reply_queue: Queue,
        *,
        reconnect_seconds: float = 5.0,
    ) -> None:
        self._amqp_url = amqp_url
        self.wire = wire
        self.replica_id = replica_id
        self.connection_name = f"{wire.service}-{replica_id}"
        self._private_spec = private_queue
        self._reconnect_seconds = reconnect_seconds
        self.rpc = RpcClient(reply_queue.name)
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractRobustChannel | None = None
        self._private_channel: AbstractRobustChannel | None = None
        self._rpc_channel: AbstractChannel | None = None
        self._private: AbstractQueue | None = None
        self._consumer_tag: str | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._stopping = False

    # -- what subclasses do --------------------------------------------------------------------
    async def prepare(self, channel: AbstractChannel) -> None:
        """Before the private queue is declared, on the publishing channel."""

    async def on_message(self, message: DeliveredMessage) -> None:
        """A message arrived on the private queue (no acknowledgement: `no_ack`)."""

    def on_lost(self) -> None:
        """The connection was lost: the private queue went with it."""

    def on_restored(self) -> None:
        """The connection is back (aio-pika restored the channels, queue and bindings)."""

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        self._stopping = False
        connection = await aio_pika.connect_robust(
            self._amqp_url,
            client_properties={"connection_name": self.connection_name},
            reconnect_interval=self._reconnect_seconds,
        )
        self._connection = connection
        self._rpc_channel = await connection.channel(publisher_confirms=False)
        await self.rpc.start(self._rpc_channel)
        publish_channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        await self.prepare(publish_channel)
        self._publish_channel = publish_channel
        # No prefetch: RabbitMQ does not apply it to `no_ack` deliveries.
        private_channel = await connection.channel()
        self._private = await declare_queue(private_channel, self._private_spec)
        await self._consume(private_channel)
        # aio-pika restores the queue and its bindings after a reconnection, but not a consumer
        # it did not start itself: start ours again on the reopened channel.
        private_channel.reopen_callbacks.add(self._consume)
        self._private_channel = private_channel
        connection.close_callbacks.add(self._lost)
        connection.reconnect_callbacks.add(self._restored)

    async def stop(self) -> None:
        self._stopping = True
        if self._connection is not None:
            # Closing on purpose is no lost connection.
            self._connection.close_callbacks.discard(self._lost)
            await self._connection.close()
            self._connection = None

    def _lost(self, *_: object) -> None:
        if not self._stopping:
            log.warning("lost the broker connection", extra={"link": self.connection_name})
            self.on_lost()

    def _restored(self, *_: object) -> None:
        log.info("broker connection restored", extra={"link": self.connection_name})
        self.on_restored()

    async def _consume(self, channel: AbstractRobustChannel | None) -> None:
        assert channel is not None and self._private is not None
        underlay = await channel.get_underlay_channel()
        consume_ok = await underlay.basic_consume(self._private.name, self.on_message, no_ack=True)
        self._consumer_tag = consume_ok.consumer_tag

    # -- state ----------------------------------------------------------------------------------
    @property
    def private_queue(self) -> AbstractQueue:
        assert self._private is not None, "the link is not started"
        return self._private

    @property
    def connected(self) -> bool:
        """Connected, with every channel open (not while aio-pika reconnects: its connection
        says it is connected a moment before the channels are restored)."""
        channels = (self._publish_channel, self._private_channel, self._rpc_channel)
        return (
            self._connection is not None
            and not self._connection.is_closed
            and self._connection.connected.is_set()
            and all(channel is not None and not channel.is_closed for channel in channels)
        )

    async def wait_connected(self, seconds: float) -> bool:
        """Wait up to `seconds` for the connection (to come back)."""
        for _ in range(math.ceil(seconds / POLL_SECONDS)):
            if self.connected:
                return True
            await asyncio.sleep(POLL_SECONDS)
        return self.connected

    async def consuming(self) -> bool:
        """Connected, and RabbitMQ still delivers to the private queue and the replies
        (readiness: a consumer the server cancelled leaves the connection up)."""
        if not self.connected or self._private_channel is None:
            return False
        return await is_consuming(self._private_channel, self._consumer_tag) and (
            await self.rpc.consuming()
        )

    # -- publishing -----------------------------------------------------------------------------
    async def exchange(self, name: str) -> AbstractExchange:
        assert self._publish_channel is not None, "the link is not started"
        if not name:
            return self._publish_channel.default_exchange
        exchange = self._exchanges.get(name)
        if exchange is None:
            exchange = await self._publish_channel.get_exchange(name, ensure=False)
            self._exchanges[name] = exchange
        return exchange

    async def send(
        self, envelope: Envelope, headers: dict[str, Any] | None = None, *, mandatory: bool = False
    ) -> None:
        """Publish and wait for the broker's confirm (a mandatory message nobody's queue takes
        raises `aio_pika.exceptions.DeliveryError`)."""
        exchange = await self.exchange(envelope.exchange)
        await exchange.publish(
            envelope.aio_pika_message(headers),
            routing_key=envelope.routing_key,
            mandatory=mandatory,
        )

    async def publish(
        self, message: BaseModel, headers: dict[str, Any] | None = None, *, mandatory: bool = False
    ) -> None:
        await self.send(self.wire.encode(message), headers, mandatory=mandatory)

    async def publish_unwaited(
        self, message: BaseModel, headers: dict[str, Any] | None = None
    ) -> None:
        """Publish and wait for the broker's confirm, without waiting for the frame to be
        written (aiormq's `wait=False`): the channel's lock is released as soon as the frame is
        queued, so the events of every answer published in one iteration of the event loop leave in
        one socket write (`chat_runtime.amqp_writer`) instead of one write, and one loop
        iteration, each. Not mandatory: a token for a session nobody follows any more is dropped."""
        channel = self._publish_channel
        assert channel is not None, "the link is not started"
        if channel.is_closed:
            raise aiormq.exceptions.ChannelInvalidStateError("the publishing channel is closed")
        envelope = self.wire.encode(message)
        # aiormq's own channel: its abstract type does not declare `wait`.
        underlay = cast(aiormq.Channel, await channel.get_underlay_channel())
        await underlay.basic_publish(
            envelope.body,
            exchange=envelope.exchange,
            routing_key=envelope.routing_key,
            properties=envelope.aiormq_properties(headers),
            mandatory=False,
            wait=False,
        )

    async def reply(self, message: BaseModel, reply_to: str, correlation_id: str | None) -> None:
        """Answer a question to its asker's reply queue (no confirm: the asker times out)."""
        await self.send(Wire.reply(message, reply_to, correlation_id))

    async def ask(self, message: BaseModel, expires_in: float, *, fanout: bool = False) -> bytes:
        """Ask a question and return the reply's body; `TimeoutError` after `expires_in`.
        A question on a fanout gets the first reply."""
        envelope = self.wire.encode(message)
        return await self.rpc.ask(
            envelope.routing_key if not fanout else "",
            envelope.body,
            expires_in=expires_in,
            exchange=envelope.exchange if fanout else None,
        )
