"""CPU per message of a FastStream subscriber: the injected `msg: RabbitMessage` parameter against
the message handed over by a decoder (`chat_runtime.work.raw_message`).

`python -m bench.probes.faststream_context_cost`: fills a queue with N messages, then consumes
them with manual acks (each way, alternating, 3 rounds) and prints this process's CPU per
message and the wall time. Needs RabbitMQ (`AMQP_URL`, default the local broker).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from uuid import uuid4

import aio_pika
from faststream.middlewares import AckPolicy
from faststream.rabbit import RabbitBroker, RabbitQueue
from faststream.rabbit.annotations import RabbitMessage

from chat_runtime.work import Delivery, raw_message

MESSAGES = 5000
ROUNDS = 3


async def _consume(url: str, way: str) -> tuple[float, float]:
    name = f"bench-context-{uuid4().hex[:8]}"
    connection = await aio_pika.connect(url)
    channel = await connection.channel()
    queue = await channel.declare_queue(name)
    for _ in range(MESSAGES):
        await channel.default_exchange.publish(aio_pika.Message(b'{"a":1}'), routing_key=name)
    # No logger: FastStream's two log lines per message are not what is measured.
    broker = RabbitBroker(url, logger=None)
    done = asyncio.Event()
    count = 0

    def one() -> None:
        nonlocal count
        count += 1
        if count == MESSAGES:
            done.set()

    target = RabbitQueue(name, durable=False)
    if way == "injected":

        @broker.subscriber(target, ack_policy=AckPolicy.MANUAL)
        async def injected(msg: RabbitMessage) -> None:
            await msg.ack()
            one()

    else:

        @broker.subscriber(target, ack_policy=AckPolicy.MANUAL, decoder=raw_message)
        async def decoded(msg: Delivery) -> None:
            await msg.ack()
            one()

    async with broker:
        cpu, wall = time.process_time(), time.perf_counter()
        await broker.start()
        await asyncio.wait_for(done.wait(), 120)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await queue.delete(if_unused=False, if_empty=False)
    await connection.close()
    return cpu / MESSAGES * 1e6, wall * 1e3


async def _main(url: str) -> None:
    results: dict[str, list[tuple[float, float]]] = {"injected": [], "decoder": []}
    for _ in range(ROUNDS):
        for way in results:
            results[way].append(await _consume(url, way))
    for way, runs in results.items():
        cpu = statistics.median(r[0] for r in runs)
        wall = statistics.median(r[1] for r in runs)
        print(f"{way:9s} {cpu:5.0f} µs CPU per message, {wall:5.0f} ms for {MESSAGES} (medians)")


def main() -> None:
    asyncio.run(_main(os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")))


if __name__ == "__main__":
    main()
