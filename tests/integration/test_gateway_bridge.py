"""The gateway's broker bridge on real RabbitMQ: session events reach it, also after the broker
drops its connection (aio-pika reconnects; the bridge must start its own consumer again)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from uuid import uuid4

import aio_pika
import pytest

from chat_contracts.base import UserRef
from chat_contracts.control import UserSignedOut
from chat_contracts.events import TokenEvent, UserMessage
from chat_contracts.topology import Topology, session_key
from chat_devtools.infra import delete_topology, unique_prefix
from chat_devtools.seed import gateway_settings
from chat_gateway.bridge import BackendUnavailable, BrokerBridge
from tests.support.broker import close_connection_named


class Received:
    """The bridge's inbound side (what `chat_gateway.delivery.EventDelivery` is in the service)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self.controls: asyncio.Queue[bytes] = asyncio.Queue()
        self.losses = 0

    def event(self, routing_key: str, body: bytes) -> None:
        self.queue.put_nowait((routing_key, body))

    def control(self, body: bytes) -> None:
        self.controls.put_nowait(body)

    def connection_lost(self) -> None:
        self.losses += 1


@pytest.fixture
async def bridge(amqp_url: str) -> AsyncIterator[tuple[BrokerBridge, Received, str]]:
    prefix = unique_prefix()
    received = Received()
    bridge = BrokerBridge(gateway_settings(amqp_url=amqp_url, broker_prefix=prefix))
    bridge.inbound = received
    await bridge.start()
    yield bridge, received, prefix
    await bridge.stop()
    await delete_topology(amqp_url, prefix)


async def _publish_token(amqp_url: str, prefix: str, session_id: object, text: str) -> None:
    event = TokenEvent(
        session_id=session_id, correlation_id=uuid4(), message_id=uuid4(), seq=1, text=text
    )
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(Topology(prefix).events.name)
        await exchange.publish(
            aio_pika.Message(event.model_dump_json().encode()),
            routing_key=session_key(event.session_id, "token"),
        )


async def test_events_of_a_bound_session_are_delivered_until_it_is_unbound(
    bridge: tuple[BrokerBridge, Received, str], amqp_url: str
) -> None:
    gateway, received, prefix = bridge
    session_id = uuid4()
    await gateway.bind(session_id)
    await _publish_token(amqp_url, prefix, session_id, "hello")
    routing_key, body = await asyncio.wait_for(received.queue.get(), 10)
    assert routing_key == session_key(session_id, "token")
    assert TokenEvent.model_validate_json(body).text == "hello"

    await gateway.unbind(session_id)
    await _publish_token(amqp_url, prefix, session_id, "nobody listens")
    other = uuid4()
    await gateway.bind(other)
    await _publish_token(amqp_url, prefix, other, "next")
    routing_key, _ = await asyncio.wait_for(received.queue.get(), 10)
    assert routing_key == session_key(other, "token")  # nothing of the unbound session came


async def test_control_messages_are_told_apart_from_session_events(
    bridge: tuple[BrokerBridge, Received, str],
) -> None:
    gateway, received, _ = bridge
    signed_out = UserSignedOut(user_id=uuid4(), reason="logout")
    await gateway.broadcast(signed_out)
    body = await asyncio.wait_for(received.controls.get(), 10)
    assert UserSignedOut.model_validate_json(body) == signed_out
    assert received.queue.empty()


async def test_delivery_resumes_after_the_broker_drops_the_connection(
    bridge: tuple[BrokerBridge, Received, str], amqp_url: str
) -> None:
    gateway, received, prefix = bridge
    session_id = uuid4()
    await gateway.bind(session_id)
    if not close_connection_named(f"gateway-{gateway.replica_id}"):
        pytest.skip("rabbitmqctl cannot reach this broker (e.g. a container)")
    # Publish until the reconnected bridge receives: it re-declares its queue, re-binds the
    # session and starts its consumer again.
    for attempt in range(100):
        await _publish_token(amqp_url, prefix, session_id, f"after-{attempt}")
        try:
            routing_key, _ = await asyncio.wait_for(received.queue.get(), 0.2)
        except TimeoutError:
            continue
        assert routing_key == session_key(session_id, "token")
        return
    pytest.fail("no event reached the bridge after the connection was dropped")


async def test_a_message_sent_while_the_broker_is_away_is_refused_at_once(
    bridge: tuple[BrokerBridge, Received, str],
) -> None:
    gateway, _, _ = bridge
    if not close_connection_named(f"gateway-{gateway.replica_id}"):
        pytest.skip("rabbitmqctl cannot reach this broker (e.g. a container)")
    for _ in range(100):
        if not gateway.connected:
            break
        await asyncio.sleep(0.02)
    assert not gateway.connected  # reconnecting (aio-pika waits a few seconds first)
    user = UserRef(user_id=uuid4(), org_id=uuid4(), email="a@example.com", name="Ada")
    message = UserMessage(
        session_id=uuid4(),
        correlation_id=uuid4(),
        message_id=uuid4(),
        reply_message_id=uuid4(),
        client_message_id="c1",
        user=user,
        text="hello?",
        received_at=time.time(),
    )
    started = time.perf_counter()
    with pytest.raises(BackendUnavailable, match="not connected"):
        await gateway.publish_user_message(message)
    assert time.perf_counter() - started < 0.1  # not after HISTORY_RPC_TIMEOUT_SECONDS
