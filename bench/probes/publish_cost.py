"""CPU cost of publishing one token event, FastStream vs raw aio-pika (the worker's hot path).

    python -m bench.probes.publish_cost [--messages 20000] [--streams 50]

`streams` concurrent publishers each publish their share one after the other, waiting for the
broker's confirm as the worker does. Prints CPU microseconds per message in this process,
RabbitMQ's CPU per message (the broker is shared: anyone else using it adds to that figure) and
wall-clock messages/s for each way of publishing. The messages go to a queue that keeps only
the last 1,000 (nobody consumes them).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import cast
from uuid import uuid4

import aio_pika
import aiormq
import psutil
from faststream.rabbit import ExchangeType, RabbitBroker, RabbitExchange

from bench.systems import rabbitmq_pid
from chat_contracts.events import TokenEvent
from chat_runtime import amqp_writer

Publish = Callable[[bytes], Awaitable[object]]


def _broker_cpu() -> float:
    """RabbitMQ's CPU seconds so far (0 if it is not found on this machine)."""
    pid = rabbitmq_pid()
    if pid is None:
        return 0.0
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


async def _measure(name: str, publish: Publish, messages: int, streams: int) -> None:
    body = TokenEvent(
        session_id=uuid4(), correlation_id=uuid4(), message_id=uuid4(), seq=1, text="abc"
    ).model_dump_json()

    async def stream(count: int) -> None:
        for _ in range(count):
            await publish(body.encode())

    share = messages // streams
    cpu, wall, broker = time.process_time(), time.perf_counter(), _broker_cpu()
    await asyncio.gather(*(stream(share) for _ in range(streams)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    broker = _broker_cpu() - broker
    total = share * streams
    print(
        f"{name:52s} {cpu / total * 1e6:6.1f} µs CPU/msg  RabbitMQ {broker / total * 1e6:6.1f}"
        f" µs/msg  {total / wall:8.0f} msg/s"
    )


async def main(url: str, messages: int, streams: int) -> None:
    prefix = f"pubcost{uuid4().hex[:6]}"
    exchange_name, queue_name, key = f"{prefix}.events", f"{prefix}.sink", "session.x.token"
    connection = await aio_pika.connect(url)
    channel = await connection.channel(publisher_confirms=True)
    exchange = await channel.declare_exchange(exchange_name, aio_pika.ExchangeType.TOPIC)
    queue = await channel.declare_queue(
        queue_name, arguments={"x-max-length": 1000, "x-overflow": "drop-head"}
    )
    await queue.bind(exchange, routing_key="session.*.token")
    plain = await connection.channel(publisher_confirms=False)
    plain_exchange = await plain.get_exchange(exchange_name)

    broker = RabbitBroker(url)
    await broker.connect()
    target = RabbitExchange(exchange_name, type=ExchangeType.TOPIC)

    async def faststream(body: bytes) -> object:
        return await broker.publish(
            body,
            exchange=target,
            routing_key=key,
            persist=False,
            content_type="application/json",
            correlation_id="c",
        )

    async def aio_pika_confirmed(body: bytes) -> object:
        message = aio_pika.Message(body, content_type="application/json", correlation_id="c")
        return await exchange.publish(message, routing_key=key)

    async def aio_pika_unconfirmed(body: bytes) -> object:
        message = aio_pika.Message(body, content_type="application/json", correlation_id="c")
        return await plain_exchange.publish(message, routing_key=key)

    raw = cast(aiormq.Channel, await channel.get_underlay_channel())
    properties = aiormq.spec.Basic.Properties(content_type="application/json", delivery_mode=1)

    async def aiormq_confirmed(body: bytes) -> object:
        return await raw.basic_publish(
            body, exchange=exchange_name, routing_key=key, properties=properties
        )

    async def aiormq_no_wait(body: bytes) -> object:
        return await raw.basic_publish(
            body, exchange=exchange_name, routing_key=key, properties=properties, wait=False
        )

    # The same, on a connection whose writer joins waiting frames (installed before it opens).
    amqp_writer.install()
    joined_connection = await aio_pika.connect(url)
    joined_channel = await joined_connection.channel(publisher_confirms=True)
    joined = cast(aiormq.Channel, await joined_channel.get_underlay_channel())

    async def aiormq_joined(body: bytes) -> object:
        return await joined.basic_publish(
            body, exchange=exchange_name, routing_key=key, properties=properties, wait=False
        )

    try:
        for _ in range(2):  # the second round is the one to read; the first warms up
            await _measure("FastStream broker.publish (confirmed)", faststream, messages, streams)
            await _measure(
                "aio-pika exchange.publish (confirmed)", aio_pika_confirmed, messages, streams
            )
            await _measure(
                "aio-pika exchange.publish (no confirms)", aio_pika_unconfirmed, messages, streams
            )
            await _measure("aiormq basic_publish (confirmed)", aiormq_confirmed, messages, streams)
            await _measure(
                "aiormq basic_publish (confirmed, wait=False)", aiormq_no_wait, messages, streams
            )
            await _measure(
                "aiormq, wait=False, one write per turn (the worker)",
                aiormq_joined,
                messages,
                streams,
            )
    finally:
        await broker.stop()
        await queue.delete(if_unused=False, if_empty=False)
        await exchange.delete()
        await joined_connection.close()
        await connection.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--streams", type=int, default=50)
    args = parser.parse_args()
    import uvloop

    print(f"load average {os.getloadavg()}")
    uvloop.run(
        main(
            os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
            args.messages,
            args.streams,
        )
    )
