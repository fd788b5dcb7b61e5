"""Request/reply on real RabbitMQ: many questions in flight at once, each answer to its asker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from chat_devtools.infra import unique_prefix
from chat_runtime.rpc import RpcClient

IN_FLIGHT = 8


@pytest.fixture
async def channel(amqp_url: str) -> AsyncIterator[AbstractChannel]:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        yield await connection.channel()


async def test_requests_are_in_flight_together_and_replies_find_their_asker(
    channel: AbstractChannel,
) -> None:
    prefix = unique_prefix()
    queue = await channel.declare_queue(f"{prefix}.questions", auto_delete=True)
    held: list[AbstractIncomingMessage] = []

    async def answer_when_all_have_arrived(message: AbstractIncomingMessage) -> None:
        # A client that sent one request at a time would never get here: the test would time out.
        held.append(message)
        if len(held) < IN_FLIGHT:
            return
        for request in held:
            await channel.default_exchange.publish(
                aio_pika.Message(b"re: " + request.body, correlation_id=request.correlation_id),
                routing_key=request.reply_to or "",
            )

    await queue.consume(answer_when_all_have_arrived, no_ack=True)
    client = RpcClient(f"{prefix}.replies")
    await client.start(channel)

    replies = await asyncio.gather(
        *(client.ask(queue.name, f"q{i}".encode(), expires_in=10) for i in range(IN_FLIGHT))
    )
    assert replies == [f"re: q{i}".encode() for i in range(IN_FLIGHT)]


async def test_a_question_nobody_answers_times_out(channel: AbstractChannel) -> None:
    prefix = unique_prefix()
    queue = await channel.declare_queue(f"{prefix}.silence", auto_delete=True)
    client = RpcClient(f"{prefix}.replies")
    await client.start(channel)
    with pytest.raises(TimeoutError):
        await client.ask(queue.name, b"anyone?", expires_in=0.3)
    await queue.delete(if_unused=False, if_empty=False)


async def test_a_fanout_question_takes_the_first_reply_and_times_out_without_a_replier(
    channel: AbstractChannel,
) -> None:
    prefix = unique_prefix()
    fanout = await channel.declare_exchange(
        f"{prefix}.fanout", aio_pika.ExchangeType.FANOUT, auto_delete=True
    )
    client = RpcClient(f"{prefix}.replies")
    await client.start(channel)
    with pytest.raises(TimeoutError):  # nobody is bound yet: the question goes nowhere
        await client.ask("", b"anyone?", expires_in=0.3, exchange=fanout.name)

    async def replier(name: str, answers: bool) -> None:
        queue = await channel.declare_queue(f"{prefix}.{name}", exclusive=True)
        await queue.bind(fanout)

        async def on_request(message: AbstractIncomingMessage) -> None:
            if answers:
                await channel.default_exchange.publish(
                    aio_pika.Message(name.encode(), correlation_id=message.correlation_id),
                    routing_key=message.reply_to or "",
                )

        await queue.consume(on_request, no_ack=True)

    await replier("silent", answers=False)
    await replier("holder", answers=True)
    assert await client.ask("", b"who holds it?", expires_in=5, exchange=fanout.name) == b"holder"
