"""The sockets this replica holds, grouped by session, each with its own ordered send queue.

A slow client never slows another: frames for a socket go through that socket's bounded queue
and its own writer task. A client whose queue overflows is disconnected (close code 1013) and,
on reconnecting, restores the session from history.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from uuid import UUID

from starlette.websockets import WebSocket

from chat_gateway.ratelimit import TokenBucket
from chat_shared.contracts import UserRef

log = logging.getLogger("chat_gateway.hub")

CLOSE_TOO_SLOW = 1013
# Custom close codes (4000-4999), documented in docs/security.md.
CLOSE_SIGNED_OUT = 4401  # token expired, signed out, or user disabled: sign in again
CLOSE_TOO_MANY_SOCKETS = 4429


class Client:
    def __init__(self, websocket: WebSocket, user: UserRef, queue_size: int) -> None:
        self.websocket = websocket
        self.user = user
        self.session_id: UUID | None = None
        self.session_ended = False
        self._queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=queue_size)
        self._writer = asyncio.create_task(self._write())
        # While a join is in progress, frames are held back so that `joined` goes first.
        self._held: list[str] | None = None
        self._closer: asyncio.Task[None] | None = None

    def hold(self) -> None:
        self._held = []

    def release(self, first: str) -> None:
        """Send `first`, then whatever was held back meanwhile."""
        held, self._held = self._held or [], None
        for data in (first, *held):
            self.send(data)

    def send(self, data: str) -> None:
        if self._held is not None:
            self._held.append(data)
            return
        try:
            self._queue.put_nowait(data)
        except asyncio.QueueFull:
            log.warning(
                "client too slow; disconnecting it", extra={"user_id": str(self.user.user_id)}
            )
            self._writer.cancel()
            self._closer = asyncio.create_task(self._close(CLOSE_TOO_SLOW))

    async def _write(self) -> None:
        while (data := await self._queue.get()) is not None:
            try:
                await self.websocket.send_text(data)
            except Exception:  # the socket went away; the receive loop cleans up
                return

    async def _close(self, code: int, reason: str = "") -> None:
        with contextlib.suppress(Exception):
            await self.websocket.close(code=code, reason=reason)

    def close(self, code: int, reason: str) -> None:
        """Close the socket (from outside its receive loop, which then ends)."""
        self._closer = asyncio.create_task(self._close(code, reason))

    async def drain_and_stop(self) -> None:
        """Send what is queued, then stop the writer."""
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self._writer, timeout=5)
        self._writer.cancel()


class SessionHub:
    """Which local sockets follow which session; binds the replica's queue accordingly.

    A session is bound while anything holds it: an attached socket, or a join in progress
    (which must be bound before it reads history, so no event falls in between).
    """

    def __init__(
        self,
        bind: Callable[[UUID], Awaitable[None]],
        unbind: Callable[[UUID], Awaitable[None]],
    ) -> None:
        self._bind = bind
        self._unbind = unbind
        self._clients: dict[UUID, set[Client]] = defaultdict(set)
        self._by_user: dict[UUID, set[Client]] = defaultdict(set)
        # Message rate limits, per user, for as long as the user has a socket here.
        self._buckets: dict[UUID, TokenBucket] = {}
        self._holds: dict[UUID, int] = defaultdict(int)
        self._lock = asyncio.Lock()

    def connect(self, client: Client) -> None:
        self._by_user[client.user.user_id].add(client)

    def disconnect(self, client: Client) -> None:
        members = self._by_user.get(client.user.user_id)
        if members is not None:
            members.discard(client)
            if not members:
                del self._by_user[client.user.user_id]
                self._buckets.pop(client.user.user_id, None)

    def bucket(self, user_id: UUID, per_minute: int) -> TokenBucket:
        bucket = self._buckets.get(user_id)
        if bucket is None:
            bucket = self._buckets[user_id] = TokenBucket(per_minute)
        return bucket

    def sockets_of(self, user_id: UUID) -> int:
        return len(self._by_user.get(user_id, ()))

    def close_user(self, user_id: UUID, code: int, reason: str) -> int:
        clients = list(self._by_user.get(user_id, ()))
        for client in clients:
            client.close(code, reason)
        return len(clients)

    def clients(self, session_id: UUID) -> set[Client]:
        return self._clients.get(session_id, set())

    async def _acquire(self, session_id: UUID) -> None:
        async with self._lock:
            if self._holds[session_id] == 0:
                await self._bind(session_id)
            self._holds[session_id] += 1

    async def _release(self, session_id: UUID) -> None:
        async with self._lock:
            self._holds[session_id] -= 1
            if self._holds[session_id] <= 0:
                del self._holds[session_id]
                await self._unbind(session_id)

    @contextlib.asynccontextmanager
    async def holding(self, session_id: UUID) -> AsyncIterator[None]:
        """Keep a session bound for the duration of the block."""
        await self._acquire(session_id)
        try:
            yield
        finally:
            await self._release(session_id)

    async def attach(self, client: Client, session_id: UUID) -> None:
        await self.detach(client)
        await self._acquire(session_id)
        self._clients[session_id].add(client)
        client.session_id = session_id
        client.session_ended = False

    async def detach(self, client: Client) -> None:
        session_id = client.session_id
        if session_id is None:
            return
        client.session_id = None
        members = self._clients.get(session_id)
        if members is not None:
            members.discard(client)
            if not members:
                del self._clients[session_id]
        await self._release(session_id)

    def deliver(self, session_id: UUID, data: str, *, ends_session: bool = False) -> None:
        for client in self._clients.get(session_id, ()):
            if ends_session:
                client.session_ended = True
            client.send(data)

    def org_of(self, session_id: UUID) -> UUID | None:
        """The org of a session this replica holds sockets for (None if it holds none)."""
        for client in self._clients.get(session_id, ()):
            return client.user.org_id
        return None

    @property
    def socket_count(self) -> int:
        return sum(len(members) for members in self._by_user.values())
