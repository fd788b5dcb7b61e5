"""CPU cost of consuming one token event in the gateway, and of turning it into a frame.

    python -m bench.probes.consume_cost [--messages 20000]

Fills a queue, then consumes it (`no_ack`, as the gateway does) in several ways and prints CPU
microseconds per message in this process: aio-pika's callback consumer, aiormq's consumer
underneath it, and each with the gateway's event → frame work on top.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Callable
from uuid import uuid4

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from aiormq.abc import DeliveredMessage

from chat_contracts.events import TokenEvent, session_event_adapter
from chat_gateway.frames import to_frame

Convert = Callable[[str, bytes], object]


def _nothing(routing_key: str, body: bytes) -> object:
    return None


def _union_then_frame(routing_key: str, body: bytes) -> object:
    frame = to_frame(session_event_adapter.validate_json(body))
    return frame.model_dump_json() if frame is not None else None


async def _fill(channel: aio_pika.abc.AbstractChannel, queue: str, count: int) -> None:
    body = TokenEvent(
        session_id=uuid4(), correlation_id=uuid4(), message_id=uuid4(), seq=1, text="abc"
    ).model_dump_json()
    for _ in range(count):
        await channel.default_exchange.publish(aio_pika.Message(body.encode()), routing_key=queue)
    declared = await channel.declare_queue(queue, passive=True)
    while (declared.declaration_result.message_count or 0) < count:
        await asyncio.sleep(0.05)
        declared = await channel.declare_queue(queue, passive=True)


async def _drain(
    connection: aio_pika.abc.AbstractConnection, count: int, style: str, convert: Convert
) -> float:
    channel = await connection.channel()
    queue = await channel.declare_queue(f"consumecost.{uuid4().hex[:8]}", exclusive=True)
    await _fill(await connection.channel(publisher_confirms=False), queue.name, count)
    done = asyncio.get_running_loop().create_future()
    seen = 0

    def one(routing_key: str, body: bytes) -> None:
        nonlocal seen
        convert(routing_key, body)
        seen += 1
        if seen == count and not done.done():
            done.set_result(None)

    started = time.process_time()
    if style == "aio-pika":

        async def on_message(message: AbstractIncomingMessage) -> None:
            one(message.routing_key or "", message.body)

        await queue.consume(on_message, no_ack=True)
    else:
        raw = await channel.get_underlay_channel()

        async def on_delivered(message: DeliveredMessage) -> None:
            one(message.routing_key or "", message.body)

        await raw.basic_consume(queue.name, on_delivered, no_ack=True)
    await done
    cpu = time.process_time() - started
    await channel.close()
    return cpu / count * 1e6


async def main(url: str, count: int) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        for round_ in range(2):  # the second round is the one to read
            for style in ("aio-pika", "aiormq"):
                for name, convert in (("no work", _nothing), ("event→frame", _union_then_frame)):
                    cost = await _drain(connection, count, style, convert)
                    if round_:
                        print(f"{style:9s} {name:12s} {cost:7.1f} µs CPU/msg")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000)
    args = parser.parse_args()
    import uvloop

    print(f"load average {os.getloadavg()}")
    url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    uvloop.run(main(url, args.messages))
