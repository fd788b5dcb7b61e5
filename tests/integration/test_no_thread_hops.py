"""Work handlers run on the event loop: no worker-thread round trip per message.

FastStream 0.7 injects a `msg: RabbitMessage` parameter with a synchronous resolver that
fast_depends runs in a worker thread, once per message; the services' subscribers take the
message from a decoder instead (`chat_runtime.work.raw_message`). The control subscriber
here shows that the spy sees such a thread hop when there is one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aio_pika
import anyio.to_thread
import pytest
from faststream.rabbit import RabbitBroker, RabbitQueue
from faststream.rabbit.annotations import RabbitMessage

from chat_contracts.topology import Topology
from chat_devtools.infra import delete_topology, unique_prefix
from chat_devtools.questions import a_user_message
from chat_orchestrator.dispatch import Dispatcher
from chat_orchestrator.handlers import register
from chat_orchestrator.settings import OrchestratorSettings
from chat_runtime.declare import declare_topology_at, exchange_for
from chat_runtime.publisher import Publisher
from chat_runtime.wire import Wire


async def test_the_orchestrator_handles_a_message_without_a_thread_hop(
    amqp_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hops: list[Callable[..., Any]] = []
    run_sync = anyio.to_thread.run_sync

    async def spy(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        hops.append(func)
        return await run_sync(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", spy)
    prefix = unique_prefix()
    topology = Topology(prefix)
    await declare_topology_at(amqp_url, topology)
    broker = RabbitBroker(amqp_url)
    settings = OrchestratorSettings(amqp_url=amqp_url, broker_prefix=prefix)
    register(broker, settings, Dispatcher(Publisher(broker, Wire(topology, "orchestrator"))))
    controls: asyncio.Queue[bytes] = asyncio.Queue()

    @broker.subscriber(RabbitQueue(f"{prefix}.control-test", auto_delete=True))
    async def control(msg: RabbitMessage) -> None:
        await controls.put(msg.body)

    connection = await aio_pika.connect(amqp_url)
    try:
        async with broker:
            await broker.start()
            channel = await connection.channel()
            work = await channel.get_queue(topology.llm_requests.name, ensure=False)
            message = a_user_message("tell me about the weather")
            await broker.publish(
                message.model_dump_json().encode(),
                exchange=exchange_for(topology.events),
                routing_key=f"session.{message.session_id}.user_message",
            )
            async with asyncio.timeout(5):
                while (await work.get(fail=False, no_ack=True)) is None:
                    await asyncio.sleep(0.02)
            assert hops == []  # routed and handed on, on the event loop alone

            await broker.publish(b"x", queue=f"{prefix}.control-test")
            await asyncio.wait_for(controls.get(), 5)
            assert hops, "the spy saw no hop for the injected parameter: it tests nothing"
    finally:
        await connection.close()
        await delete_topology(amqp_url, prefix)
