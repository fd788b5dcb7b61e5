"""The worker's own aio-pika connection, for what is on the per-token and per-answer hot path.

- token events: raw aio-pika on a confirm channel, ~1.4x less CPU per message than FastStream's
  publish (docs/benchmarks.md), and not mandatory: a token for a session nobody is watching any
  more is dropped by the broker instead of being returned to the worker;
- history questions, any number in flight (`chat_shared.rpc.RpcClient`), a few per answer;
- control (issue 8): the replica's private queue on the `llm-control` fanout, where gateways
  ask for stops and replays; replies go straight to the asker's `reply_to` queue.

FastStream keeps the rest: consuming LLM requests and publishing `complete` / `error`.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from typing import Any, cast
from uuid import uuid4

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
from pydantic import ValidationError

from chat_llm_worker.settings import LlmWorkerSettings
from chat_shared.contracts import (
    AnyWorkerControl,
    ProgressEvent,
    ReplayReply,
    StopRequest,
    TokenEvent,
    worker_control_adapter,
)
from chat_shared.rpc import RpcClient
from chat_shared.runtime import is_consuming
from chat_shared.topology import Topology, session_key

log = logging.getLogger("chat_llm_worker")

RECONNECT_SECONDS = 1.0
POLL_SECONDS = 0.05

# Answers a control message; a reply (to a replay) goes back to its asker.
OnControl = Callable[[AnyWorkerControl], ReplayReply | None]


class WorkerLink:
    def __init__(self, settings: LlmWorkerSettings) -> None:
        self._settings = settings
        self._topology = Topology(settings.broker_prefix)
        self.replica_id = uuid4().hex[:12]
        self._connection: AbstractRobustConnection | None = None
        self._events: AbstractExchange | None = None
        self.connection_name = f"llm-worker-{self.replica_id}"
        self.rpc = RpcClient(f"{self._topology.prefix}.llm-worker.{self.replica_id}.replies")
        self._control: AbstractExchange | None = None
        self._control_queue: AbstractQueue | None = None
        self._control_channel: AbstractRobustChannel | None = None
        self._events_channel: AbstractChannel | None = None
        self._rpc_channel: AbstractChannel | None = None
        self._control_tag: str | None = None
        self.on_control: OnControl = lambda control: None
        # Called when the broker connection is lost: answers in flight can no longer be
        # acknowledged, and their requests are redelivered.
        self.on_lost: Callable[[], None] = lambda: None

    @property
    def connected(self) -> bool:
        """Connected, with every channel open (not while aio-pika reconnects: its connection
        says it is connected a moment before the channels are restored)."""
        channels = (self._events_channel, self._rpc_channel, self._control_channel)
        return (
            self._connection is not None
            and self._connection.connected.is_set()
            and all(channel is not None and not channel.is_closed for channel in channels)
        )

    async def wait_connected(self, seconds: float) -> bool:
        """Wait up to `seconds` for the connection (to come back). Polled: no callback tells
        when every channel is restored."""
        for _ in range(math.ceil(seconds / POLL_SECONDS)):
            if self.connected:
                return True
            await asyncio.sleep(POLL_SECONDS)
        return self.connected

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(
            self._settings.amqp_url,
            client_properties={"connection_name": self.connection_name},
            # Answers wait for the link when it is lost: try again soon.
            reconnect_interval=RECONNECT_SECONDS,
        )
        self._rpc_channel = await self._connection.channel(publisher_confirms=False)
        await self.rpc.start(self._rpc_channel)
        events_channel = await self._connection.channel(publisher_confirms=True)
        self._events = await events_channel.get_exchange(self._topology.events.name)
        self._control = await events_channel.get_exchange(self._topology.llm_control.name)
        self._events_channel = events_channel

        control_channel = await self._connection.channel()
        self._control_queue = await control_channel.declare_queue(
            self._topology.llm_control_queue(self.replica_id), exclusive=True, auto_delete=True
        )
        await self._control_queue.bind(self._control)
        await self._consume_control(control_channel)
        # aio-pika restores the queue and its binding after a reconnection, but not a consumer
        # it did not start itself (chat_gateway.bridge does the same).
        control_channel.reopen_callbacks.add(self._consume_control)
        self._control_channel = control_channel
        self._connection.close_callbacks.add(self._lost)
        self._connection.reconnect_callbacks.add(self._restored)

    def _lost(self, *_: object) -> None:
        log.warning("lost the broker connection")
        self.on_lost()

    def _restored(self, *_: object) -> None:
        log.info("broker connection restored")

    async def _consume_control(self, channel: AbstractRobustChannel | None) -> None:
        assert channel is not None and self._control_queue is not None
        underlay = await channel.get_underlay_channel()
        consume_ok = await underlay.basic_consume(
            self._control_queue.name, self._on_control_message, no_ack=True
        )
        self._control_tag = consume_ok.consumer_tag

    async def control_consuming(self) -> bool:
        """Does RabbitMQ still deliver control messages to this replica (readiness)?"""
        if self._control_channel is None:
            return False
        return await is_consuming(self._control_channel, self._control_tag)

    async def _on_control_message(self, message: DeliveredMessage) -> None:
        try:
            control = worker_control_adapter.validate_json(message.body)
        except ValidationError:
            log.error("ignored a control message that matches no contract")
            return
        reply = self.on_control(control)
        properties = message.header.properties
        if reply is None or not properties.reply_to or self._control_channel is None:
            return
        try:
            await self._control_channel.default_exchange.publish(
                aio_pika.Message(
                    reply.model_dump_json().encode(),
                    content_type="application/json",
                    correlation_id=properties.correlation_id,
                    delivery_mode=aio_pika.DeliveryMode.NOT_PERSISTENT,
                ),
                routing_key=properties.reply_to,
            )
        except Exception:
            # The asker's reply queue is gone or the broker is: it times out and resyncs.
            log.warning("could not reply to a replay request", exc_info=True)

    async def broadcast_stop(self, stop: StopRequest) -> None:
        """Ask every worker replica (this one too) to stop an answer."""
        assert self._control is not None, "the link is not started"
        await self._control.publish(
            aio_pika.Message(
                stop.model_dump_json().encode(),
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.NOT_PERSISTENT,
            ),
            routing_key="",
        )

    async def publish_token(self, event: TokenEvent, headers: dict[str, Any] | None = None) -> None:
        """Publish a token event and wait for the broker's confirm (the batcher's signal).

        On aiormq's channel, without waiting for the frame to be written (`wait=False`): the
        channel's lock is released as soon as the frame is queued, so the events of every
        answer published in one event-loop turn leave in one socket write
        (`chat_shared.amqp_writer`) instead of one write, and one loop turn, each."""
        assert self._events is not None and self._events_channel is not None, "not started"
        if self._events_channel.is_closed:
            raise aiormq.exceptions.ChannelInvalidStateError("the events channel is closed")
        # aiormq's own channel: its abstract type does not declare `wait`.
        channel = cast(aiormq.Channel, await self._events_channel.get_underlay_channel())
        await channel.basic_publish(
            event.model_dump_json().encode(),
            exchange=self._events.name,
            routing_key=session_key(event.session_id, event.type),
            properties=aiormq.spec.Basic.Properties(
                content_type="application/json", delivery_mode=1, headers=headers
            ),
            mandatory=False,
            wait=False,
        )

    async def publish_progress(self, event: ProgressEvent) -> None:
        """Publish a call's progress (persistent: history's queue keeps it) and wait for the
        confirm. For a stopping worker: the link closes only after FastStream's broker."""
        assert self._events is not None, "the link is not started"
        await self._events.publish(
            aio_pika.Message(
                event.model_dump_json().encode(),
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                correlation_id=str(event.correlation_id),
            ),
            routing_key=session_key(event.session_id, event.type),
        )

    async def stop(self) -> None:
        if self._connection is not None:
            # Closing on purpose is no lost connection.
            self._connection.close_callbacks.discard(self._lost)
            await self._connection.close()
            self._connection = None
