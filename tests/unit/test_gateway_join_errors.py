"""A join that cannot follow the session's events (the broker's channel is not back yet after a
restart) is answered with a clear, retryable error, and the socket stays usable."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast
from uuid import UUID, uuid4

from starlette.websockets import WebSocket

from chat_contracts.base import UserRef
from chat_contracts.history import SessionSnapshot
from chat_gateway.bridge import BackendUnavailable, BrokerBridge
from chat_gateway.conversation import Conversation
from chat_gateway.hub import Client, SessionHub
from chat_gateway.settings import GatewaySettings


class RecordingSocket:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send_text(self, data: str) -> None:
        self.sent.append(data)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.sent.append(json.dumps({"closed": code}))


class BrokerComingBack:
    """History answers; binding a session fails the first time, as right after a restart."""

    def __init__(self) -> None:
        self.binds = 0

    async def bind(self, session_id: UUID) -> None:
        self.binds += 1
        if self.binds == 1:
            raise BackendUnavailable("could not follow the session's events")

    async def unbind(self, session_id: UUID) -> None:
        return None

    async def ask_history(self, request: Any) -> bytes:
        return SessionSnapshot(status="ok", session_id=uuid4()).model_dump_json().encode()


async def test_a_join_whose_bind_fails_gets_a_retryable_error_then_succeeds() -> None:
    bridge = BrokerComingBack()
    hub = SessionHub(bridge.bind, bridge.unbind)
    socket = RecordingSocket()
    user = UserRef(user_id=uuid4(), org_id=uuid4(), email="a@example.com", name="Ada")
    client = Client(cast(WebSocket, socket), user, queue_size=10)
    conversation = Conversation(client, hub, cast(BrokerBridge, bridge), GatewaySettings())

    assert await conversation.join(None) is False
    assert client.session_id is None
    assert await conversation.join(None) is True
    for _ in range(5):
        await asyncio.sleep(0)

    frames = [json.loads(data) for data in socket.sent]
    assert frames[0]["type"] == "error"
    assert frames[0]["code"] == "unavailable" and frames[0]["retryable"] is True
    assert "Try again" in frames[0]["message"]
    assert frames[1]["type"] == "joined"
    await client.drain_and_stop()
