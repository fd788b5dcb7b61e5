"""A WebSocket client of the chat protocol, for tests."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from uuid import uuid4

import websockets
from websockets.asyncio.client import ClientConnection

Frame = dict[str, Any]
TERMINAL = ("complete", "error")


class ChatClient:
    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.frames: list[Frame] = []

    @classmethod
    async def connect(cls, url: str, token: str | None = None, **kwargs: Any) -> ChatClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        connection = await websockets.connect(url, additional_headers=headers, **kwargs)
        return cls(connection)

    async def close(self) -> None:
        await self.connection.close()

    async def raw(self, data: str | bytes) -> None:
        await self.connection.send(data)

    async def frame(self, payload: Frame) -> None:
        await self.connection.send(json.dumps(payload))

    async def recv(self, timeout: float = 10) -> Frame:
        frame: Frame = json.loads(await asyncio.wait_for(self.connection.recv(), timeout))
        self.frames.append(frame)
        return frame

    async def recv_type(self, *types: str, timeout: float = 10) -> Frame:
        """The next frame of one of `types`; frames of other types on the way are kept."""
        while True:
            frame = await self.recv(timeout)
            if frame["type"] in types:
                return frame

    async def join(self, session_id: str | None = None) -> Frame:
        payload: Frame = {"type": "join"}
        if session_id is not None:
            payload["session_id"] = session_id
        await self.frame(payload)
        return await self.recv_type("joined", "error")

    async def send(self, text: str) -> Frame:
        """Send a message and return its `accepted` (or `error`) frame."""
        client_message_id = uuid4().hex
        await self.frame({"type": "send", "text": text, "client_message_id": client_message_id})
        return await self.recv_type("accepted", "error")

    async def answer(self, reply_message_id: str, timeout: float = 20) -> list[Frame]:
        """Every frame of one assistant message, up to and including `complete` or `error`."""
        frames: list[Frame] = []
        while True:
            frame = await self.recv(timeout)
            if frame.get("message_id") != reply_message_id:
                continue
            frames.append(frame)
            if frame["type"] in TERMINAL:
                return frames

    async def ask(self, text: str, timeout: float = 20) -> tuple[Frame, list[Frame]]:
        accepted = await self.send(text)
        assert accepted["type"] == "accepted", accepted
        return accepted, await self.answer(accepted["reply_message_id"], timeout)
