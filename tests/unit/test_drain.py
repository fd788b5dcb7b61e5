"""The gateway's drain on SIGTERM, against a recording stand-in for a WebSocket."""

from __future__ import annotations

import asyncio
from typing import Any, cast
from uuid import uuid4

from starlette.websockets import WebSocket

from chat_contracts.base import UserRef
from chat_contracts.codes import CloseCode
from chat_gateway.drain import Drain
from chat_gateway.hub import Client


class RecordingSocket:
    """What the gateway sent, in order: text frames, then the close code."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def send_text(self, data: str) -> None:
        await asyncio.sleep(0.001)  # a socket takes a little while to write
        self.sent.append(data)

    async def close(self, code: int = 1000) -> None:
        self.sent.append(("close", code))


def client_on(socket: RecordingSocket) -> Client:
    user = UserRef(user_id=uuid4(), org_id=uuid4(), email="a@example.com", name="Ada")
    return Client(cast(WebSocket, socket), user, queue_size=100)


async def test_queued_frames_are_sent_before_the_1012_close() -> None:
    drain, socket = Drain(), RecordingSocket()
    client = client_on(socket)
    drain.track(client)
    for n in range(20):
        client.send(f"frame {n}")

    await drain.close_all(within_seconds=5)

    assert socket.sent == [*(f"frame {n}" for n in range(20)), ("close", CloseCode.SERVICE_RESTART)]


async def test_the_frame_being_handled_finishes_and_its_reply_goes_out_first() -> None:
    drain, socket = Drain(), RecordingSocket()
    client = client_on(socket)
    drain.track(client)
    publishing = asyncio.Event()

    async def handle_send() -> None:
        async with drain.handling(client) as may_handle:
            assert may_handle
            publishing.set()
            await asyncio.sleep(0.05)  # the publish and its broker confirm
            client.send("accepted")

    handler = asyncio.create_task(handle_send())
    await publishing.wait()
    await drain.close_all(within_seconds=5)
    await handler

    assert socket.sent == ["accepted", ("close", CloseCode.SERVICE_RESTART)]


async def test_frames_that_arrive_once_stopping_are_not_handled() -> None:
    drain, socket = Drain(), RecordingSocket()
    client = client_on(socket)
    drain.track(client)
    await drain.close_all(within_seconds=5)

    async with drain.handling(client) as may_handle:
        assert not may_handle
    assert drain.draining


async def test_a_socket_that_cannot_be_flushed_does_not_hold_the_stop_forever() -> None:
    drain = Drain()

    class StuckSocket(RecordingSocket):
        async def send_text(self, data: str) -> None:
            await asyncio.Event().wait()

    client = client_on(StuckSocket())
    drain.track(client)
    client.send("never written")
    async with asyncio.timeout(8):
        await drain.close_all(within_seconds=0.2)
