"""The minimal relay: the baseline the benchmark holds the product against.

Two small processes and RabbitMQ, nothing else: no framework, no orchestrator, no history, no
database, no authentication, no contracts.

- `relay server`: a raw ASGI app on uvicorn (compression off, like the gateway). One exclusive
  aio-pika queue, bound to `r.<session>.*` for each session it holds a socket for; every message
  consumed is written as-is to that session's socket through a per-socket queue and writer (the
  least that keeps frames in order).
- `relay llm`: an aio-pika consumer of requests that streams the same scripted deltas on the same
  schedule as the product's scripted provider, one AMQP message per delta, without publisher
  confirms: the one-message-per-token chain the services are compared with.

It speaks just enough of the chat protocol (`join`/`joined`, `send`/`accepted`, `token`,
`complete`) for the load generator to drive it exactly like the gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from uuid import uuid4

import aio_pika
import uvicorn
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage, AbstractQueue

from chat_llm_worker.scripted import scripted_reply, split_deltas

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

TIER1_TEXT = "who am i"
PAGE = b"<!doctype html><title>relay</title><p>minimal relay</p>"


def exchange_name(prefix: str) -> str:
    return f"{prefix}.relay"


def llm_queue_name(prefix: str) -> str:
    return f"{prefix}.relay.llm"


class RelayServer:
    """The relay's ASGI app: sockets by session, fed from one aio-pika queue."""

    def __init__(self, amqp_url: str, prefix: str) -> None:
        self._amqp_url = amqp_url
        self._prefix = prefix
        self._sockets: dict[str, asyncio.Queue[str | None]] = {}
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._exchange: AbstractExchange | None = None
        self._queue: AbstractQueue | None = None
        self._default: AbstractExchange | None = None

    async def start(self) -> None:
        self._connection = await aio_pika.connect(self._amqp_url)
        channel = await self._connection.channel(publisher_confirms=False)
        self._exchange = await channel.declare_exchange(
            exchange_name(self._prefix), aio_pika.ExchangeType.TOPIC
        )
        self._default = channel.default_exchange
        self._queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await self._queue.consume(self._deliver, no_ack=True)

    async def stop(self) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def _deliver(self, message: AbstractIncomingMessage) -> None:
        session_id = (message.routing_key or "").split(".", 2)[1]
        queue = self._sockets.get(session_id)
        if queue is not None:
            queue.put_nowait(message.body.decode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._page(send)
        elif scope["type"] == "websocket":
            await self._socket(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                await self.start()
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _page(self, send: Send) -> None:
        headers = [(b"content-type", b"text/html"), (b"content-length", str(len(PAGE)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": PAGE})

    async def _socket(self, receive: Receive, send: Send) -> None:
        assert self._queue is not None and self._exchange is not None
        if (await receive())["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        outbox: asyncio.Queue[str | None] = asyncio.Queue()

        async def write() -> None:
            while (text := await outbox.get()) is not None:
                await send({"type": "websocket.send", "text": text})

        writer = asyncio.create_task(write())
        session_id: str | None = None
        try:
            while True:
                event = await receive()
                if event["type"] == "websocket.disconnect":
                    break
                frame = json.loads(event["text"])
                if frame["type"] == "join":
                    session_id = uuid4().hex
                    self._sockets[session_id] = outbox
                    await self._queue.bind(self._exchange, routing_key=f"r.{session_id}.*")
                    outbox.put_nowait(json.dumps({"type": "joined", "session_id": session_id}))
                elif frame["type"] == "send" and session_id is not None:
                    await self._request(session_id, frame, outbox)
        finally:
            if session_id is not None:
                self._sockets.pop(session_id, None)
                with contextlib.suppress(Exception):
                    await self._queue.unbind(self._exchange, routing_key=f"r.{session_id}.*")
            outbox.put_nowait(None)
            with contextlib.suppress(Exception):
                await writer

    async def _request(
        self, session_id: str, frame: dict[str, Any], outbox: asyncio.Queue[str | None]
    ) -> None:
        assert self._default is not None
        reply_id = uuid4().hex
        body = {"session_id": session_id, "message_id": reply_id, "text": frame["text"]}
        await self._default.publish(
            aio_pika.Message(json.dumps(body).encode()), routing_key=llm_queue_name(self._prefix)
        )
        accepted = {
            "type": "accepted",
            "client_message_id": frame["client_message_id"],
            "reply_message_id": reply_id,
        }
        outbox.put_nowait(json.dumps(accepted))


class RelayLlm:
    """Streams scripted deltas for each request, one AMQP message per delta."""

    def __init__(self, amqp_url: str, prefix: str, ttft: float, rate: float) -> None:
        self._amqp_url = amqp_url
        self._prefix = prefix
        self._ttft = ttft
        self._interval = 1 / rate
        self._exchange: AbstractExchange | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        connection = await aio_pika.connect(self._amqp_url)
        async with connection:
            channel = await connection.channel(publisher_confirms=False)
            self._exchange = await channel.declare_exchange(
                exchange_name(self._prefix), aio_pika.ExchangeType.TOPIC
            )
            queue = await channel.declare_queue(llm_queue_name(self._prefix), auto_delete=True)
            await queue.consume(self._on_request, no_ack=True)
            print("relay llm ready", flush=True)
            await asyncio.Future()  # until the process is stopped

    async def _on_request(self, message: AbstractIncomingMessage) -> None:
        request = json.loads(message.body)
        task = asyncio.create_task(self._answer(request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, session_id: str, event: str, frame: dict[str, Any]) -> None:
        assert self._exchange is not None
        await self._exchange.publish(
            aio_pika.Message(json.dumps(frame).encode()), routing_key=f"r.{session_id}.{event}"
        )

    async def _answer(self, request: dict[str, Any]) -> None:
        session_id, message_id, text = request["session_id"], request["message_id"], request["text"]
        if text.strip().lower() == TIER1_TEXT:
            complete = {"type": "complete", "message_id": message_id, "seq": 1, "text": "you"}
            await self._publish(session_id, "complete", complete)
            return
        reply = scripted_reply(text)
        deltas = split_deltas(reply)
        start = time.monotonic() + self._ttft
        for index, delta in enumerate(deltas):
            delay = start + index * self._interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            token = {
                "type": "token",
                "message_id": message_id,
                "seq": index + 1,
                "text": delta,
                "deltas": 1,
                "emitted_at": time.time(),
            }
            await self._publish(session_id, "token", token)
        complete = {
            "type": "complete",
            "message_id": message_id,
            "seq": len(deltas) + 1,
            "text": reply,
        }
        await self._publish(session_id, "complete", complete)


async def delete_exchange(amqp_url: str, prefix: str) -> None:
    """The exchange outlives the relay's processes (they come and go between levels)."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.exchange_delete(exchange_name(prefix))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=["server", "llm"])
    parser.add_argument("--amqp-url", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ttft-ms", type=float, default=300)
    parser.add_argument("--rate", type=float, default=60)
    args = parser.parse_args()
    if args.role == "server":
        uvicorn.run(
            RelayServer(args.amqp_url, args.prefix),
            host="127.0.0.1",
            port=args.port,
            log_level="warning",
            ws_per_message_deflate=False,
            lifespan="on",
        )
    else:
        import uvloop

        uvloop.run(RelayLlm(args.amqp_url, args.prefix, args.ttft_ms / 1000, args.rate).run())


if __name__ == "__main__":
    main()
