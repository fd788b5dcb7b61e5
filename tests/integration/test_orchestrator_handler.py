"""The orchestrator's handler, written once and run two ways: in memory and on real RabbitMQ."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from faststream.rabbit import RabbitBroker, RabbitQueue, TestRabbitBroker
from faststream.rabbit.annotations import RabbitMessage

from chat_contracts.events import RoutedEvent, UserMessage
from chat_contracts.topology import Topology, event_binding, session_key
from chat_contracts.work import LlmRequest, ToolRequest
from chat_devtools.infra import delete_topology, unique_prefix
from chat_devtools.questions import a_user_message
from chat_orchestrator.dispatch import Dispatcher
from chat_orchestrator.handlers import register
from chat_orchestrator.settings import OrchestratorSettings
from chat_runtime.declare import exchange_for, queue_for
from chat_runtime.publisher import Publisher
from chat_runtime.wire import Wire


@pytest.fixture(params=["memory", "rabbitmq"])
async def harness(request: pytest.FixtureRequest, amqp_url: str) -> AsyncIterator[dict[str, Any]]:
    prefix = unique_prefix()
    settings = OrchestratorSettings(amqp_url=amqp_url, broker_prefix=prefix)
    topology = Topology(prefix)
    broker = RabbitBroker(amqp_url)
    register(broker, settings, Dispatcher(Publisher(broker, Wire(topology, "orchestrator"))))
    received: dict[str, asyncio.Queue[bytes]] = {
        "tool": asyncio.Queue(),
        "llm": asyncio.Queue(),
        "routed": asyncio.Queue(),
    }

    @broker.subscriber(
        RabbitQueue(f"{prefix}.test-routed", auto_delete=True, routing_key=event_binding("routed")),
        exchange_for(topology.events),
    )
    async def routed(msg: RabbitMessage) -> None:
        await received["routed"].put(msg.body)

    @broker.subscriber(queue_for(topology.tool_requests), exchange_for(topology.work))
    async def tools(msg: RabbitMessage) -> None:
        await received["tool"].put(msg.body)

    @broker.subscriber(queue_for(topology.llm_requests), exchange_for(topology.work))
    async def llm(msg: RabbitMessage) -> None:
        await received["llm"].put(msg.body)

    if request.param == "memory":
        async with TestRabbitBroker(broker) as test_broker:
            yield {"broker": test_broker, "topology": topology, "received": received}
    else:
        async with broker:
            await broker.start()
            yield {"broker": broker, "topology": topology, "received": received}
        await delete_topology(amqp_url, prefix)


async def _publish(harness: dict[str, Any], message: UserMessage) -> None:
    await harness["broker"].publish(
        message.model_dump_json().encode(),
        exchange=exchange_for(harness["topology"].events),
        routing_key=session_key(message.session_id, "user_message"),
    )


async def test_identity_questions_become_tool_requests(harness: dict[str, Any]) -> None:
    message = a_user_message("who am I?")
    await _publish(harness, message)
    body = await asyncio.wait_for(harness["received"]["tool"].get(), 5)
    request = ToolRequest.model_validate_json(body)
    assert request.tool == "who_am_i" and request.user == message.user
    assert request.message_id == message.reply_message_id
    routed = RoutedEvent.model_validate_json(
        await asyncio.wait_for(harness["received"]["routed"].get(), 5)
    )
    assert routed.tier == 1 and routed.tool == "who_am_i"
    assert harness["received"]["llm"].empty()


async def test_other_messages_become_llm_requests(harness: dict[str, Any]) -> None:
    message = a_user_message("summarise what Finnest does")
    await _publish(harness, message)
    body = await asyncio.wait_for(harness["received"]["llm"].get(), 5)
    request = LlmRequest.model_validate_json(body)
    assert request.text == message.text and request.correlation_id == message.correlation_id
    routed = RoutedEvent.model_validate_json(
        await asyncio.wait_for(harness["received"]["routed"].get(), 5)
    )
    assert routed.tier == 2 and routed.tool is None
    assert harness["received"]["tool"].empty()
