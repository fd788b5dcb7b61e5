"""Stopping the gateway gracefully (SIGTERM from Kubernetes or `docker compose`).

1. The listening socket closes: new connections go to the other replicas, and `/readyz` of a
   replica that is still reachable answers 503.
2. Each open socket: the frame being handled (a `send` being published, say) finishes and its
   reply is queued; frames that arrive after that are not handled; what is queued for the
   socket is sent; then the socket is closed with 1012 ("service restart"). The client
   reconnects, lands on another replica and rejoins its session. So a `send` that was answered
   with `accepted` was published, and one that was not, was not: nothing to guess on resend.
3. Then uvicorn's own shutdown runs, and the lifespan closes the broker connection.

Answers being streamed are not affected: they belong to the LLM worker, the session's events
reach whichever replica the client rejoins, and history keeps the whole answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator

import uvicorn

from chat_contracts.codes import CloseCode
from chat_gateway.hub import Client

log = logging.getLogger("chat_gateway.drain")


class Drain:
    """The open sockets, and whether the replica is stopping."""

    def __init__(self) -> None:
        self.draining = False
        self._sockets: dict[Client, asyncio.Lock] = {}

    def track(self, client: Client) -> None:
        self._sockets[client] = asyncio.Lock()

    def forget(self, client: Client) -> None:
        self._sockets.pop(client, None)

    @contextlib.asynccontextmanager
    async def handling(self, client: Client) -> AsyncIterator[bool]:
        """Hold the socket while one of its frames is handled; yields False once stopping."""
        lock = self._sockets.get(client)
        if lock is None or self.draining:
            yield False
            return
        async with lock:
            yield not self.draining

    async def close_all(self, within_seconds: float) -> None:
        """Stop handling frames; flush every socket and close it with 1012, in at most that time."""
        self.draining = True
        sockets = list(self._sockets.items())
        if not sockets:
            return
        log.info("closing %d sockets: clients reconnect to another replica", len(sockets))
        tasks = [asyncio.create_task(self._close(client, lock)) for client, lock in sockets]
        _done, pending = await asyncio.wait(tasks, timeout=within_seconds)
        if pending:
            log.warning("%d sockets not closed within %.0f s", len(pending), within_seconds)
            for task in pending:
                task.cancel()

    @staticmethod
    async def _close(client: Client, lock: asyncio.Lock) -> None:
        async with lock:  # the frame being handled, if any, finishes first
            await client.drain_and_stop()
            with contextlib.suppress(Exception):
                await client.websocket.close(code=CloseCode.SERVICE_RESTART)


class DrainingServer(uvicorn.Server):
    """uvicorn, with the gateway's drain between "stop accepting" and uvicorn's own shutdown
    (which would close every WebSocket at once, dropping what is queued for it)."""

    def __init__(self, config: uvicorn.Config, drain: Drain, grace_seconds: float) -> None:
        super().__init__(config)
        self._drain = drain
        self._grace_seconds = grace_seconds

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        await self._drain.close_all(self._grace_seconds)
        await super().shutdown(sockets)
