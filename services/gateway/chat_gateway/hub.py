"""The sockets this replica holds, grouped by session, each with its own ordered send queue.

A slow client never slows another: frames for a socket go through that socket's bounded queue
and its own writer task. A client whose queue overflows is disconnected (close code 1013) and,
on reconnecting, restores the session from history.

Each socket gets an answer's events at most once and in order: it remembers, per answer, the
highest `(attempt, seq)` it was sent, and drops anything at or below it (a replayed event that
also came live, an event of an attempt that was superseded). A `retrying` frame counts as seq 0
of its attempt. An answer is forgotten `FORGET_SECONDS` after its final event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from uuid import UUID

from starlette.websockets import WebSocket

from chat_contracts.base import UserRef
from chat_contracts.codes import CloseCode
from chat_contracts.protocol import HeartbeatFrame
from chat_gateway.frames import Outgoing
from chat_gateway.ratelimit import TokenBucket

log = logging.getLogger("chat_gateway.hub")

# How long a socket remembers an answer after its final event (longer than a replay is served).
FORGET_SECONDS = 120.0
# At most this many answers remembered per socket (the oldest is forgotten first).
MAX_TRACKED = 1024


class Client:
    def __init__(self, websocket: WebSocket, user: UserRef, queue_size: int) -> None:
        self.websocket = websocket
        self.user = user
        self.session_id: UUID | None = None
        self.session_ended = False
        # When the client last sent a frame (any kind), for closing silent sockets.
        self.heard_at = time.monotonic()
        self._queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=queue_size)
        self._writer = asyncio.create_task(self._write())
        # While a join is in progress, frames are deferred so that `joined` goes first.
        self._deferred: list[Outgoing] | None = None
        self._closer: asyncio.Task[None] | None = None
        # Per answer (by `message_id.int`: a UUID's own hash is a Python-level call): the
        # highest (attempt, seq) sent; when to forget answers whose final event was sent.
        self._sent: dict[int, tuple[int, int]] = {}
        self._finished: deque[tuple[float, int]] = deque()

    @property
    def joining(self) -> bool:
        return self._deferred is not None

    def defer(self) -> None:
        self._deferred = []

    def discard_deferred(self) -> None:
        self._deferred = None

    def floor(self, message_id: UUID, attempt: int, seq: int) -> None:
        """The client has `message_id` up to `seq` of `attempt`: send nothing at or below it."""
        self._sent[message_id.int] = (attempt, seq)

    def release(self, first: str, *then: Outgoing) -> None:
        """Send `first`, then `then`, then whatever was deferred meanwhile."""
        deferred, self._deferred = self._deferred or [], None
        self.send(first)
        for outgoing in (*then, *deferred):
            self.post(outgoing)

    def heard(self) -> None:
        self.heard_at = time.monotonic()

    def _admit(self, message_id: UUID, attempt: int, seq: int, final: bool) -> bool:
        """Is this answer's event new to the socket? Then remember it."""
        key = message_id.int
        position = (attempt, seq)
        sent = self._sent.get(key)
        if sent is not None and position <= sent:
            return False
        if sent is None and len(self._sent) >= MAX_TRACKED:
            del self._sent[next(iter(self._sent))]
        self._sent[key] = position
        if final:
            now = time.monotonic()
            finished = self._finished
            while finished and finished[0][0] <= now:
                self._sent.pop(finished.popleft()[1], None)
            finished.append((now + FORGET_SECONDS, key))
        return True

    def send(self, data: str) -> None:
        """Queue a frame that is no answer's event (deferred while joining)."""
        self.post(Outgoing(data))

    def post(self, outgoing: Outgoing) -> None:
        """Queue a frame for the socket (deferred while joining; an answer's event only if
        it is new to the socket)."""
        if self._deferred is not None:
            self._deferred.append(outgoing)
            return
        message_id = outgoing.message_id
        if message_id is not None and not self._admit(
            message_id, outgoing.attempt, outgoing.seq, outgoing.final
        ):
            return
        try:
            self._queue.put_nowait(outgoing.data)
        except asyncio.QueueFull:
            log.warning(
                "client too slow; disconnecting it", extra={"user_id": str(self.user.user_id)}
            )
            self._writer.cancel()
            self._closer = asyncio.create_task(self._close(CloseCode.TOO_SLOW))

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
        if self._closer is None:
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

    A session is bound while a socket is attached to it; a joining socket is attached (its
    frames deferred) before history is read, so no event falls in between.
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
        # How many local sockets follow each bound session.
        self._followers: dict[UUID, int] = defaultdict(int)
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
            if self._followers[session_id] == 0:
                await self._bind(session_id)
            self._followers[session_id] += 1

    async def _release(self, session_id: UUID) -> None:
        async with self._lock:
            self._followers[session_id] -= 1
            if self._followers[session_id] <= 0:
                del self._followers[session_id]
                await self._unbind(session_id)

    async def attach(self, client: Client, session_id: UUID) -> None:
        """Bind the session and add the socket to it, deferring its frames (from here on
        nothing of the session is missed) until the join releases them after `joined`."""
        await self.detach(client)
        await self._acquire(session_id)
        self._clients[session_id].add(client)
        client.session_id = session_id
        client.session_ended = False
        client.defer()

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

    def deliver(self, session_id: UUID, outgoing: Outgoing, *, ends_session: bool = False) -> None:
        for client in self._clients.get(session_id, ()):
            if ends_session:
                client.session_ended = True
            client.post(outgoing)

    def org_of(self, session_id: UUID) -> UUID | None:
        """The org of a session this replica holds sockets for (None if it holds none).

        A socket still joining is not asked: its user is not yet known to own the session."""
        for client in self._clients.get(session_id, ()):
            if not client.joining:
                return client.user.org_id
        return None

    def all_clients(self) -> list[Client]:
        return [client for members in self._by_user.values() for client in members]

    def close_all(self, code: int, reason: str) -> int:
        clients = self.all_clients()
        for client in clients:
            client.close(code, reason)
        return len(clients)

    def tick(self, silence_seconds: float) -> None:
        """Send every socket a heartbeat; close those the client has been silent on."""
        now = time.monotonic()
        heartbeat = HeartbeatFrame(at=time.time()).model_dump_json()
        for client in self.all_clients():
            if now - client.heard_at > silence_seconds:
                client.close(CloseCode.SILENT, "nothing received from the client")
            else:
                client.send(heartbeat)

    async def keep_alive(self, heartbeat_seconds: float, silence_seconds: float) -> None:
        """One ticker for every socket of the replica (not a task per socket)."""
        while True:
            await asyncio.sleep(heartbeat_seconds)
            try:
                self.tick(silence_seconds)
            except Exception:
                log.exception("heartbeat tick failed")

    @property
    def socket_count(self) -> int:
        return sum(len(members) for members in self._by_user.values())
