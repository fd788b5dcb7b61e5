"""The gateway's side of the broker, on raw aio-pika (aiormq for consuming): the per-token
hot path.

- publishes user messages (persistent, publisher confirms, mandatory);
- owns this replica's private queue, bound to `session.<id>.*` for exactly the sessions it holds
  sockets for, and hands each event to the hub;
- asks the history service questions (request/reply over a private reply queue);
- tells the LLM workers to stop an answer, and asks them to replay one (fanout `llm-control`);
- reports a reconnection to the broker: this replica's queue lost what was published meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from uuid import UUID, uuid4

import aio_pika
from aio_pika.abc import (
    AbstractExchange,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from aiormq.abc import DeliveredMessage
from pydantic import BaseModel

from chat_gateway.settings import GatewaySettings
from chat_gateway.telemetry import delivery_span
from chat_shared.contracts import (
    DeliveredEvent,
    ReplayReply,
    ReplayRequest,
    StopRequest,
    UserMessage,
    UserSignedOut,
)
from chat_shared.declare import declare_topology
from chat_shared.rpc import RpcClient
from chat_shared.runtime import is_consuming
from chat_shared.telemetry import instruments
from chat_shared.topology import Topology, session_binding, session_key
from chat_shared.tracing import inject_headers

log = logging.getLogger("chat_gateway.bridge")

EventHandler = Callable[[str, bytes], None]
ControlHandler = Callable[[bytes], None]
ReconnectHandler = Callable[[], None]


class BackendUnavailable(Exception):
    """The broker or the history service did not answer in time."""


class BrokerBridge:
    def __init__(
        self,
        settings: GatewaySettings,
        on_event: EventHandler,
        on_control: ControlHandler,
        on_reconnect: ReconnectHandler | None = None,
    ) -> None:
        self._settings = settings
        self._topology = Topology(settings.broker_prefix)
        self._on_event = on_event
        self._on_control = on_control
        self._on_reconnect = on_reconnect
        self.replica_id = uuid4().hex[:12]
        self._connection: AbstractRobustConnection | None = None
        self._events: AbstractExchange | None = None
        self._control: AbstractExchange | None = None
        self._llm_control: AbstractExchange | None = None
        self._session_queue: AbstractQueue | None = None
        self._rpc = RpcClient(f"{self._topology.gateway_queue(self.replica_id)}.replies")
        self._consume_channel: AbstractRobustChannel | None = None
        self._consumer_tag: str | None = None
        self._stopping = False

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(
            self._settings.amqp_url,
            client_properties={"connection_name": f"gateway-{self.replica_id}"},
        )
        publish_channel = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        await declare_topology(publish_channel, self._topology)
        self._events = await publish_channel.get_exchange(self._topology.events.name)
        self._control = await publish_channel.get_exchange(self._topology.control.name)
        self._llm_control = await publish_channel.get_exchange(self._topology.llm_control.name)

        # No prefetch setting: RabbitMQ does not apply it to `no_ack` deliveries.
        consume_channel = await self._connection.channel()
        self._session_queue = await consume_channel.declare_queue(
            self._topology.gateway_queue(self.replica_id), exclusive=True, auto_delete=True
        )
        await self._session_queue.bind(self._control)
        await self._consume(consume_channel)
        # aio-pika restores the queue and its bindings after a reconnection, but not a consumer
        # it did not start itself: start ours again on the reopened channel.
        consume_channel.reopen_callbacks.add(self._consume)
        self._consume_channel = consume_channel
        await self._rpc.start(await self._connection.channel())
        self._connection.close_callbacks.add(self._lost)
        self._connection.reconnect_callbacks.add(self._reconnected)

    def _lost(self, _connection: object, _exc: BaseException | None = None) -> None:
        # This replica's queue is exclusive: it went with the connection, and what is published
        # from now on does not reach it. Once aio-pika restores it, new events would, and a
        # socket would show an answer with a hole in it: its clients go now (and rejoin here or
        # elsewhere with `after`; the workers replay what they missed).
        if self._stopping:
            return
        log.warning("lost the broker connection: events published meanwhile will not reach us")
        if self._on_reconnect is not None:
            self._on_reconnect()

    def _reconnected(self, _connection: object) -> None:
        log.warning("reconnected to the broker: events published meanwhile did not reach us")
        if self._on_reconnect is not None:
            self._on_reconnect()

    async def _consume(self, channel: AbstractRobustChannel | None) -> None:
        # aiormq's consumer directly: aio-pika's wraps each delivery in an IncomingMessage and a
        # second task, 57 instead of 37 µs per message (bench/consume_cost.py).
        assert channel is not None and self._session_queue is not None
        underlay = await channel.get_underlay_channel()
        consume_ok = await underlay.basic_consume(
            self._session_queue.name, self._deliver, no_ack=True
        )
        self._consumer_tag = consume_ok.consumer_tag

    async def stop(self) -> None:
        self._stopping = True
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    @property
    def connected(self) -> bool:
        """Connected right now (False while the robust connection is reconnecting)."""
        connection = self._connection
        return connection is not None and not connection.is_closed and connection.connected.is_set()

    async def consuming(self) -> bool:
        """Connected, and RabbitMQ still delivers to both of this replica's queues."""
        if not self.connected or self._consume_channel is None:
            return False
        return await is_consuming(self._consume_channel, self._consumer_tag) and (
            await self._rpc.consuming()
        )

    async def _deliver(self, message: DeliveredMessage) -> None:
        if message.exchange == self._topology.control.name:
            self._on_control(message.body)
        elif message.routing_key is not None:
            with delivery_span(message.routing_key, message.header.properties.headers):
                self._on_event(message.routing_key, message.body)

    async def bind(self, session_id: UUID) -> None:
        assert self._session_queue is not None and self._events is not None
        try:
            await self._session_queue.bind(self._events, routing_key=session_binding(session_id))
        except Exception as exc:  # e.g. a channel still closed right after a broker restart
            raise BackendUnavailable("could not follow the session's events") from exc

    async def unbind(self, session_id: UUID) -> None:
        assert self._session_queue is not None and self._events is not None
        try:
            await self._session_queue.unbind(self._events, routing_key=session_binding(session_id))
        except Exception:  # a stale binding only costs a few dropped deliveries
            log.warning("could not unbind a session", exc_info=True)

    async def publish_user_message(self, message: UserMessage) -> None:
        assert self._events is not None
        if not self.connected:
            # A robust channel would wait for the reconnection; the client is told at once.
            raise BackendUnavailable("not connected to the message broker")
        started = time.perf_counter()
        try:
            await asyncio.wait_for(
                self._events.publish(
                    aio_pika.Message(
                        message.model_dump_json().encode(),
                        content_type="application/json",
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        correlation_id=str(message.correlation_id),
                        headers=inject_headers(),
                    ),
                    routing_key=session_key(message.session_id, message.type),
                    mandatory=True,
                ),
                timeout=self._settings.history_rpc_timeout_seconds,
            )
        except Exception as exc:
            raise BackendUnavailable("the message broker did not accept the message") from exc
        instruments().publish_duration.record(time.perf_counter() - started, {"kind": message.type})

    async def publish_delivered(self, event: DeliveredEvent) -> None:
        """Tell history when an answer's first event reached a socket (its timeline)."""
        assert self._events is not None
        await self._events.publish(
            aio_pika.Message(
                event.model_dump_json().encode(),
                content_type="application/json",
                correlation_id=str(event.correlation_id),
                headers=inject_headers(),
            ),
            routing_key=session_key(event.session_id, event.type),
        )

    async def broadcast(self, control: UserSignedOut) -> None:
        """Tell every gateway replica (this one included)."""
        assert self._control is not None
        await self._control.publish(
            aio_pika.Message(control.model_dump_json().encode(), content_type="application/json"),
            routing_key="",
        )

    async def stop_answer(self, request: StopRequest) -> None:
        """Tell every LLM worker (the one streaming the answer acts on it)."""
        assert self._llm_control is not None
        if not self.connected:
            raise BackendUnavailable("not connected to the message broker")
        try:
            await asyncio.wait_for(
                self._llm_control.publish(
                    aio_pika.Message(
                        request.model_dump_json().encode(), content_type="application/json"
                    ),
                    routing_key="",
                ),
                timeout=self._settings.history_rpc_timeout_seconds,
            )
        except Exception as exc:
            raise BackendUnavailable("the message broker did not accept the stop") from exc

    async def ask_replay(self, request: ReplayRequest) -> ReplayReply | None:
        """The events a client missed, from the worker holding the answer; None if no worker
        answers within REPLAY_TIMEOUT_SECONDS (none holds it) or the broker is unreachable."""
        if not self.connected:
            return None
        try:
            body = await self._rpc.ask(
                "",
                request.model_dump_json().encode(),
                expires_in=self._settings.replay_timeout_seconds,
                exchange=self._topology.llm_control.name,
            )
        except TimeoutError:
            return None
        except Exception:
            log.warning("could not ask for a replay", exc_info=True)
            return None
        try:
            return ReplayReply.model_validate_json(body)
        except ValueError:
            log.warning("dropped a replay reply that does not match its contract")
            return None

    async def ask_history(self, request: BaseModel) -> bytes:
        try:
            return await self._rpc.ask(
                self._topology.history_rpc.name,
                request.model_dump_json().encode(),
                expires_in=self._settings.history_rpc_timeout_seconds,
            )
        except Exception as exc:
            raise BackendUnavailable("the history service did not answer") from exc
