"""Keeping sockets honest (docs/decisions/0006): the gateway (a real process on real RabbitMQ)
sends heartbeats, closes a socket its client went silent on (4408), and closes every socket
with 1012 when its broker connection came back (its queue lost what was published meanwhile,
so the clients must rejoin with `after`)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
import websockets

from chat_contracts.base import UserRef
from chat_devtools.client import ChatClient
from chat_devtools.seed import create_user, token_for
from chat_devtools.stack import Stack, StackFactory
from tests.support.broker import close_connection_named, gateway_connection_name

HEARTBEAT = 0.3
SILENCE = 1.5


@pytest.fixture(scope="module")
def stack(stack_factory: StackFactory) -> Stack:
    return stack_factory(
        services=("gateway",), HEARTBEAT_SECONDS=str(HEARTBEAT), CLIENT_SILENCE_SECONDS=str(SILENCE)
    )


@pytest.fixture
async def user(database_url: str) -> UserRef:
    return await create_user(database_url)


@contextlib.asynccontextmanager
async def pinging(client: ChatClient) -> AsyncIterator[None]:
    """A well-behaved client: a ping at every heartbeat interval."""

    async def ping() -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                await client.frame({"type": "ping"})
                await asyncio.sleep(HEARTBEAT)

    task = asyncio.create_task(ping())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def close_code(client: ChatClient, within: float) -> int | None:
    """Read frames until the gateway closes the socket; its close code."""
    with contextlib.suppress(websockets.ConnectionClosed):
        async with asyncio.timeout(within):
            while True:
                await client.recv(within)
    return client.connection.close_code


async def test_heartbeats_arrive_and_a_silent_client_is_closed_with_4408(
    stack: Stack, user: UserRef
) -> None:
    talking = await ChatClient.connect(stack.ws_url, token_for(user))
    silent = await ChatClient.connect(stack.ws_url, token_for(user))
    started = time.monotonic()
    async with pinging(talking):
        code = await close_code(silent, within=SILENCE + 5)
        closed_after = time.monotonic() - started
        assert code == 4408
        assert SILENCE <= closed_after < SILENCE + HEARTBEAT + 1
        assert silent.connection.close_reason == "nothing received from the client"
        heartbeats = [f for f in silent.frames if f["type"] == "heartbeat"]
        assert len(heartbeats) >= int(SILENCE / HEARTBEAT) - 1
        assert all(abs(f["at"] - time.time()) < 10 for f in heartbeats)

        await asyncio.sleep(SILENCE)  # the pinging client outlives the silence limit
        now = time.time()
        while (await talking.recv_type("heartbeat"))["at"] < now:
            pass  # those it did not read yet; a fresh one comes: the socket is still served
        assert talking.connection.close_code is None
    await talking.close()


async def test_sockets_are_closed_with_1012_when_the_broker_connection_comes_back(
    stack: Stack, user: UserRef
) -> None:
    client = await ChatClient.connect(stack.ws_url, token_for(user))
    async with pinging(client):
        await client.recv_type("heartbeat")
        # In a thread: rabbitmqctl takes a second or two, and the client must go on pinging.
        name = gateway_connection_name(stack)
        if not await asyncio.to_thread(close_connection_named, name):
            pytest.skip("rabbitmqctl cannot reach this broker (e.g. a container)")
        # aio-pika reconnects after its reconnect interval (5 s), then the sockets are closed.
        code = await close_code(client, within=30)
    assert code == 1012
    assert client.connection.close_reason == "reconnect"
    # The replica is usable again: a new socket is served.
    again = await ChatClient.connect(stack.ws_url, token_for(user))
    async with pinging(again):
        assert (await again.recv_type("pong"))["type"] == "pong"
    await again.close()
