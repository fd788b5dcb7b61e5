"""Consuming a work queue: the one subscriber block every FastStream service uses.

`subscribe_work` subscribes a handler to one of the topology's quorum queues with manual
acknowledgement: a message is acknowledged only once the handler has handed it on, put back
when the handler fails (the quorum queue counts deliveries and dead-letters it after
`MAX_DELIVERIES`), and rejected at once (dead-lettered) when its body is not a valid contract.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aio_pika.exceptions import ChannelInvalidStateError
from faststream.middlewares import AckPolicy
from faststream.rabbit import Channel, RabbitBroker
from faststream.rabbit.message import RabbitMessage
from pydantic import BaseModel, TypeAdapter, ValidationError

from chat_contracts.topology import MAX_DELIVERIES, Queue
from chat_runtime.declare import exchange_for, queue_for
from chat_runtime.logs import bind_correlation_id
from chat_runtime.timeline import handling

log = logging.getLogger(__name__)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

# What a subscriber registered with `decoder=raw_message` is handed: the `RabbitMessage` itself.
# Typed Any because FastStream refuses a handler parameter annotated with the message class.
Delivery = Any


async def raw_message(message: RabbitMessage) -> RabbitMessage:
    """A subscriber's decoder that hands the handler the message itself.

    The usual `msg: RabbitMessage` parameter is injected by FastStream 0.7 through a context
    field whose resolver is synchronous, so fast_depends runs it in a worker thread for every
    message: twice the CPU per message and half the throughput (docs/benchmarks.md).
    """
    return message


@dataclass(frozen=True)
class Attempt(Generic[M]):
    """A work item and which delivery of it this is: RabbitMQ 3.10 sets `x-delivery-count` to
    0 on the first delivery and adds one per return; after the delivery with count
    `MAX_DELIVERIES` is returned, the quorum queue dead-letters it."""

    body: M
    number: int
    last: bool


def body_of(model: type[M]) -> Callable[[RabbitMessage], M]:
    """Parse a delivery's body as `model`."""

    def parse(message: RabbitMessage) -> M:
        return model.model_validate_json(message.body)

    return parse


def validated_by(adapter: TypeAdapter[T]) -> Callable[[RabbitMessage], T]:
    """Parse a delivery's body with `adapter` (a union of contracts, say)."""

    def parse(message: RabbitMessage) -> T:
        return adapter.validate_json(message.body)

    return parse


def attempt_of(model: type[M]) -> Callable[[RabbitMessage], Attempt[M]]:
    """Parse a delivery's body as `model`, with the attempt it is."""

    def parse(message: RabbitMessage) -> Attempt[M]:
        deliveries = int(message.headers.get("x-delivery-count") or 0)
        return Attempt(
            model.model_validate_json(message.body), deliveries + 1, deliveries >= MAX_DELIVERIES
        )

    return parse


def _work_of(parsed: object) -> object:
    return parsed.body if isinstance(parsed, Attempt) else parsed


async def process_work(
    message: RabbitMessage,
    parse: Callable[[RabbitMessage], T],
    work: Callable[[T], Awaitable[None]],
) -> None:
    """Acknowledge a work message only once `work` has handed it on (see the module)."""
    try:
        parsed = parse(message)
    except ValidationError as exc:
        # Where and why, never the values: they may hold a user's text.
        problems = [f"{'.'.join(map(str, e['loc']))}: {e['type']}" for e in exc.errors()[:5]]
        log.error("rejected a message that does not match its contract: %s", "; ".join(problems))
        await message.reject()
        return
    body = _work_of(parsed)
    with (
        bind_correlation_id(getattr(body, "correlation_id", None)),
        handling(getattr(body, "queued_at", None)),
    ):
        try:
            await work(parsed)
        except Exception:
            log.exception("%s failed; returning it to the queue", type(body).__name__)
            try:
                await message.nack()
            except ChannelInvalidStateError:
                # The channel it came on is gone (the broker connection was lost): RabbitMQ
                # returns every unacknowledged message of that channel to its queue by itself.
                log.warning("could not nack: its channel is closed; the broker requeues it")
            return
    await message.ack()


def subscribe_work(
    broker: RabbitBroker,
    queue: Queue,
    parse: Callable[[RabbitMessage], T],
    work: Callable[[T], Awaitable[None]],
    prefetch: int,
) -> None:
    """Consume `queue` with `prefetch` messages in hand, each handed to `work` (see the module)."""

    async def on_message(message: Delivery) -> None:
        await process_work(message, parse, work)

    broker.subscriber(
        queue_for(queue),
        exchange_for(queue.exchange),
        channel=Channel(prefetch_count=prefetch),
        ack_policy=AckPolicy.MANUAL,
        decoder=raw_message,
    )(on_message)
