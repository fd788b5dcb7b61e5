"""The gateway's link to the broker (`chat_runtime.link.RawLink`): the per-token hot path.

- publishes user messages (persistent, confirmed, mandatory: a message no queue takes is an
  error the user is told about) and `delivered` reports;
- owns this replica's private queue, bound to `session.<id>.*` for exactly the sessions it holds
  sockets for (and to the sign-out fanout), and hands what arrives to its `inbound`
  (`chat_gateway.delivery.EventDelivery`);
- asks the history service questions, and the LLM workers for replays; tells them to stop an
  answer;
- a lost connection means this replica's queue missed what was published meanwhile: `inbound`
  is told (its sockets are closed, and their clients rejoin with what they have).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol
from uuid import UUID, uuid4

from aio_pika.abc import AbstractChannel
from aiormq.abc import DeliveredMessage
from pydantic import BaseModel, ValidationError

from chat_contracts.control import ReplayReply, ReplayRequest, StopRequest, UserSignedOut
from chat_contracts.events import DeliveredEvent, UserMessage
from chat_contracts.topology import Topology, session_binding
from chat_gateway.settings import GatewaySettings
from chat_gateway.telemetry import delivery_span
from chat_runtime.declare import declare_topology
from chat_runtime.link import RawLink
from chat_runtime.telemetry import instruments
from chat_runtime.tracing import inject_headers
from chat_runtime.wire import Wire

log = logging.getLogger("chat_gateway.bridge")

SERVICE = "gateway"


class BackendUnavailable(Exception):
    """The broker or the history service did not answer in time."""


class Inbound(Protocol):
    """Where what arrives on the replica's queue goes."""

    def event(self, routing_key: str, body: bytes) -> None: ...

    def control(self, body: bytes) -> None: ...

    def connection_lost(self) -> None: ...


class _Nowhere:
    def event(self, routing_key: str, body: bytes) -> None:
        return None

    def control(self, body: bytes) -> None:
        return None

    def connection_lost(self) -> None:
        return None


class BrokerBridge(RawLink):
    def __init__(self, settings: GatewaySettings) -> None:
        replica_id = uuid4().hex[:12]
        topology = Topology(settings.broker_prefix)
        super().__init__(
            settings.amqp_url,
            Wire(topology, SERVICE),
            replica_id,
            topology.gateway_queue(replica_id),
            topology.gateway_replies(replica_id),
        )
        self._topology = topology
        self._timeout = settings.history_rpc_timeout_seconds
        self._replay_timeout = settings.replay_timeout_seconds
        # Set before `start` (chat_gateway.main).
        self.inbound: Inbound = _Nowhere()

    async def prepare(self, channel: AbstractChannel) -> None:
        # The gateway is not a FastStream service: it declares the topology itself.
        await declare_topology(channel, self._topology)

    # -- inbound ------------------------------------------------------------------------------
    async def on_message(self, message: DeliveredMessage) -> None:
        if message.exchange == self._topology.control.name:
            self.inbound.control(message.body)
        elif message.routing_key is not None:
            with delivery_span(message.routing_key, message.header.properties.headers):
                self.inbound.event(message.routing_key, message.body)

    def on_lost(self) -> None:
        # This replica's queue is exclusive: it went with the connection, and what is published
        # from now on does not reach it. Once aio-pika restores it, new events would, and a
        # socket would show an answer with a hole in it.
        log.warning("lost the broker connection: events published meanwhile will not reach us")
        self.inbound.connection_lost()

    def on_restored(self) -> None:
        log.warning("reconnected to the broker: events published meanwhile did not reach us")
        self.inbound.connection_lost()

    async def bind(self, session_id: UUID) -> None:
        """Follow a session's events."""
        try:
            exchange = await self.exchange(self._topology.events.name)
            await self.private_queue.bind(exchange, routing_key=session_binding(session_id))
        except Exception as exc:  # e.g. a channel still closed right after a broker restart
            raise BackendUnavailable("could not follow the session's events") from exc

    async def unbind(self, session_id: UUID) -> None:
        try:
            exchange = await self.exchange(self._topology.events.name)
            await self.private_queue.unbind(exchange, routing_key=session_binding(session_id))
        except Exception:  # a stale binding only costs a few dropped deliveries
            log.warning("could not unbind a session", exc_info=True)

    # -- outbound -----------------------------------------------------------------------------
    async def _confirmed(self, message: BaseModel, what: str, *, mandatory: bool) -> None:
        if not self.connected:
            # A robust channel would wait for the reconnection; the client is told at once.
            raise BackendUnavailable("not connected to the message broker")
        try:
            await asyncio.wait_for(
                self.publish(message, inject_headers(), mandatory=mandatory), self._timeout
            )
        except Exception as exc:
            raise BackendUnavailable(f"the message broker did not accept the {what}") from exc

    async def publish_user_message(self, message: UserMessage) -> None:
        started = time.perf_counter()
        await self._confirmed(message, "message", mandatory=True)
        instruments().publish_duration.record(time.perf_counter() - started, {"kind": message.type})

    async def publish_delivered(self, event: DeliveredEvent) -> None:
        """Tell history when an answer's first event reached a socket (its timeline)."""
        await self.publish(event, inject_headers())

    async def broadcast(self, signed_out: UserSignedOut) -> None:
        """Tell every gateway replica (this one included)."""
        await self.publish(signed_out)

    async def stop_answer(self, request: StopRequest) -> None:
        """Tell every LLM worker (the one streaming the answer acts on it)."""
        await self._confirmed(request, "stop", mandatory=False)

    async def ask_replay(self, request: ReplayRequest) -> ReplayReply | None:
        """The events a client missed, from the worker holding the answer; None if no worker
        answers within REPLAY_TIMEOUT_SECONDS (none holds it) or the broker is unreachable."""
        if not self.connected:
            return None
        try:
            body = await self.ask(request, self._replay_timeout, fanout=True)
        except TimeoutError:
            return None
        except Exception:
            log.warning("could not ask for a replay", exc_info=True)
            return None
        try:
            return ReplayReply.model_validate_json(body)
        except ValidationError:
            log.warning("dropped a replay reply that does not match its contract")
            return None

    async def ask_history(self, request: BaseModel) -> bytes:
        try:
            return await self.ask(request, self._timeout)
        except Exception as exc:
            raise BackendUnavailable("the history service did not answer") from exc
