"""Declares the durable part of the topology, the same way from every service.

Every service declares all exchanges, durable queues and their bindings when it starts, so no
accepted message is unroutable whichever service happens to start first. Declarations are
idempotent; the arguments come from `Topology`, so they always match.
"""

from __future__ import annotations

import aio_pika
from aio_pika.abc import AbstractChannel
from faststream.rabbit import RabbitExchange, RabbitQueue

from chat_shared.topology import PERSISTED_EVENTS, Topology, event_binding


async def _exchange(
    channel: AbstractChannel, exchange: RabbitExchange
) -> aio_pika.abc.AbstractExchange:
    return await channel.declare_exchange(
        exchange.name, type=exchange.type.value, durable=exchange.durable
    )


async def _queue(
    channel: AbstractChannel,
    queue: RabbitQueue,
    exchange: aio_pika.abc.AbstractExchange | None,
    bindings: tuple[str, ...] = (),
) -> None:
    declared = await channel.declare_queue(
        queue.name, durable=queue.durable, auto_delete=queue.auto_delete, arguments=queue.arguments
    )
    if exchange is not None:
        for key in bindings or (queue.routing(),):
            await declared.bind(exchange, routing_key=key)


async def declare_topology(channel: AbstractChannel, topology: Topology) -> None:
    events = await _exchange(channel, topology.events)
    work = await _exchange(channel, topology.work)
    dead = await _exchange(channel, topology.dead_letters)
    await _exchange(channel, topology.control)
    await _exchange(channel, topology.llm_control)
    await _queue(channel, topology.dead_letter_queue, dead, ("#",))
    await _queue(channel, topology.orchestrator_inbox, events)
    await _queue(channel, topology.tool_requests, work)
    await _queue(channel, topology.llm_requests, work)
    await _queue(
        channel,
        topology.history_events,
        events,
        tuple(event_binding(event) for event in PERSISTED_EVENTS),
    )
    await _queue(channel, topology.history_rpc, None)


async def declare_topology_at(amqp_url: str, topology: Topology) -> None:
    """Declare over a short-lived connection (services whose broker client hides its own)."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        await declare_topology(await connection.channel(), topology)
