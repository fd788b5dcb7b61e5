"""The broker's part of one hop, on an idle box: publish → delivery, and publish → confirm.

    python -m bench.probes.broker_hop [--messages 300]

One message at a time (the next after the previous one arrived, 5 ms apart), a 200-byte body,
aio-pika on both ends in this process, for the three kinds of queue the services use: a
classic queue with transient messages (the gateway's replica queue), a classic durable queue
with persistent messages, and a quorum queue (the work queues and history's events). Prints
p50 and p95 in ms. This is the floor under every hop of a question (docs/benchmarks.md,
"What a question costs").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from uuid import uuid4

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from aiormq.abc import FieldTable

KINDS: tuple[tuple[str, FieldTable, aio_pika.DeliveryMode], ...] = (
    ("classic, transient", {}, aio_pika.DeliveryMode.NOT_PERSISTENT),
    ("classic, persistent", {}, aio_pika.DeliveryMode.PERSISTENT),
    ("quorum", {"x-queue-type": "quorum"}, aio_pika.DeliveryMode.PERSISTENT),
)


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = ordered[len(ordered) // 2]
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"p50 {p50:5.2f}  p95 {p95:5.2f} ms"


async def _hop(
    connection: aio_pika.abc.AbstractConnection,
    arguments: FieldTable,
    mode: aio_pika.DeliveryMode,
    confirms: bool,
    messages: int,
) -> list[float]:
    publisher = await connection.channel(publisher_confirms=confirms)
    consumer = await connection.channel()
    queue = await consumer.declare_queue(
        f"bench.hop.{uuid4().hex[:8]}", durable=True, arguments=arguments
    )
    arrived: asyncio.Queue[float] = asyncio.Queue()

    async def on_message(message: AbstractIncomingMessage) -> None:
        arrived.put_nowait(time.perf_counter())
        await message.ack()

    tag = await queue.consume(on_message)
    samples = []
    try:
        for _ in range(messages):
            sent = time.perf_counter()
            await publisher.default_exchange.publish(
                aio_pika.Message(b"x" * 200, delivery_mode=mode), routing_key=queue.name
            )
            done = time.perf_counter() if confirms else await arrived.get()
            if confirms:
                await arrived.get()
            samples.append((done - sent) * 1000)
            await asyncio.sleep(0.005)
    finally:
        await queue.cancel(tag)
        await queue.delete(if_unused=False, if_empty=False)
        await publisher.close()
        await consumer.close()
    return samples


async def main(url: str, messages: int) -> None:
    connection = await aio_pika.connect(url)
    try:
        for name, arguments, mode in KINDS:
            delivered = await _hop(connection, arguments, mode, False, messages)
            confirmed = await _hop(connection, arguments, mode, True, messages)
            print(
                f"{name:20s} publish → delivery {_percentiles(delivered)};"
                f"  publish → confirm {_percentiles(confirmed)}"
            )
    finally:
        await connection.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    args = parser.parse_args()
    asyncio.run(
        main(os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"), args.messages)
    )
