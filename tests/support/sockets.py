"""A recording stand-in for a WebSocket, and the gateway's `Client` on it (unit tests of the
gateway's inbound path need no server)."""

from __future__ import annotations

import asyncio
from typing import Any, cast
from uuid import uuid4

from starlette.websockets import WebSocket

from chat_contracts.base import UserRef
from chat_gateway.hub import Client


class RecordingSocket:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def send_text(self, data: str) -> None:
        self.sent.append(data)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.sent.append(("close", code, reason))


def client_on(
    socket: RecordingSocket, queue_size: int = 100, user: UserRef | None = None
) -> Client:
    user = user or UserRef(user_id=uuid4(), org_id=uuid4(), email="a@example.com", name="Ada")
    return Client(cast(WebSocket, socket), user, queue_size=queue_size)


async def settle() -> None:
    """Let the sockets' writer tasks run."""
    for _ in range(5):
        await asyncio.sleep(0)
