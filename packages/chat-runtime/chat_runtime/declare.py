"""Declares the durable part of the topology, the same way from every service.

Every service declares all exchanges, durable queues and their bindings when it starts, so no
accepted message is unroutable whichever service happens to start first. Declarations are
idempotent; names, arguments and bindings come from `chat_contracts.topology`, so they always
match. `queue_for` and `exchange_for` give FastStream the same declarations.
"""

from __future__ import annotations

from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue
from faststream.rabbit import ExchangeType, QueueType, RabbitExchange, RabbitQueue

from chat_contracts.topology import Exchange, Queue, Topology


def exchange_for(exchange: Exchange) -> RabbitExchange:
    """The exchange as FastStream declares it."""
    return RabbitExchange(exchange.name, type=ExchangeType(exchange.type.value), durable=True)


def queue_for(queue: Queue) -> RabbitQueue:
    """The queue as FastStream declares it (bound with its first binding key; `declare_queue`
    binds the others)."""
    arguments: Any = {k: v for k, v in queue.arguments.items() if k != "x-queue-type"}
    if queue.quorum:
        return RabbitQueue(
            queue.name,
            queue_type=QueueType.QUORUM,
            durable=True,
            exclusive=queue.exclusive,
            auto_delete=queue.auto_delete,
            routing_key=queue.routing_key,
            arguments=arguments,
        )
    return RabbitQueue(
        queue.name,
        queue_type=QueueType.CLASSIC,
        durable=queue.durable,
        exclusive=queue.exclusive,
        auto_delete=queue.auto_delete,
        routing_key=queue.routing_key,
        arguments=arguments,
    )


async def declare_exchange(channel: AbstractChannel, exchange: Exchange) -> AbstractExchange:
    return await channel.declare_exchange(
        exchange.name, type=exchange.type.value, durable=exchange.durable
    )


async def declare_queue(
    channel: AbstractChannel, queue: Queue, *, bind: bool = True
) -> AbstractQueue:
    """Declare `queue` and its bindings (those of a session, `{session_id}`, are bound per
    session by their consumer)."""
    declared = await channel.declare_queue(
        queue.name,
        durable=queue.durable,
        exclusive=queue.exclusive,
        auto_delete=queue.auto_delete,
        arguments=dict(queue.arguments) or None,
    )
    if bind:
        for binding in queue.bindings:
            if "{" not in binding.key:
                exchange = await channel.get_exchange(binding.exchange.name, ensure=False)
                await declared.bind(exchange, routing_key=binding.key)
    return declared


async def declare_topology(channel: AbstractChannel, topology: Topology) -> None:
    for exchange in topology.exchanges():
        await declare_exchange(channel, exchange)
    for queue in topology.durable_queues():
        await declare_queue(channel, queue)


async def declare_topology_at(amqp_url: str, topology: Topology) -> None:
    """Declare over a short-lived connection (services whose broker client hides its own)."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        await declare_topology(await connection.channel(), topology)
