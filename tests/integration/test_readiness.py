"""Readiness means consuming: a replica whose consumer RabbitMQ cancelled is not ready, though
its connection is up (`/readyz` is what Kubernetes and compose healthchecks ask)."""

from __future__ import annotations

import asyncio
import contextlib

import aio_pika
import httpx

from chat_contracts.topology import Topology
from chat_devtools.stack import StackFactory, free_port


async def readyz(url: str) -> int:
    async with httpx.AsyncClient() as http:
        return (await http.get(f"{url}/readyz", timeout=2)).status_code


async def test_a_worker_whose_consumer_was_cancelled_is_not_ready(
    stack_factory: StackFactory, amqp_url: str
) -> None:
    stack = stack_factory(services=("orchestrator",))
    url = f"http://127.0.0.1:{stack.ports['orchestrator']}"
    assert await readyz(url) == 200

    # Deleting its queue makes RabbitMQ cancel the consumer; the connection stays up.
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(Topology(stack.env["BROKER_PREFIX"]).orchestrator_inbox.name)

    for _ in range(100):
        if await readyz(url) == 503:
            break
        await asyncio.sleep(0.05)
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{url}/readyz", timeout=2)
        assert (response.status_code, response.text) == (503, "not consuming")
        assert (await http.get(f"{url}/livez", timeout=2)).status_code == 200


async def test_a_gateway_whose_database_does_not_answer_is_not_ready(
    stack_factory: StackFactory,
) -> None:
    stack = stack_factory(services=())
    nowhere = f"postgresql+asyncpg://agentchat_app@127.0.0.1:{free_port()}/agentchat"
    stack.start("gateway", {"DATABASE_URL": nowhere})
    url = f"http://127.0.0.1:{stack.ports['gateway']}"
    async with httpx.AsyncClient() as http:
        for _ in range(300):
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"{url}/livez", timeout=2)).status_code == 200:
                    break
            await asyncio.sleep(0.1)
        response = await http.get(f"{url}/readyz", timeout=5)
        assert (response.status_code, response.text) == (503, "database not answering")
    stack.stop("gateway")
