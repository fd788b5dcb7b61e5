"""Consumes user messages, decides the tier, and hands the work on."""

from __future__ import annotations

import logging
from uuid import uuid4

from faststream.middlewares import AckPolicy
from faststream.rabbit import Channel, RabbitBroker

from chat_orchestrator.routing import route
from chat_orchestrator.settings import OrchestratorSettings
from chat_shared.contracts import LlmRequest, RoutedEvent, ToolRequest, UserMessage, now
from chat_shared.runtime import Delivery, process_work, publish_event, publish_work, raw_message
from chat_shared.topology import LLM_REQUEST_KEY, TOOL_REQUEST_KEY, Topology
from chat_shared.tracing import span

log = logging.getLogger("chat_orchestrator")


def register(broker: RabbitBroker, settings: OrchestratorSettings) -> None:
    topology = Topology(settings.broker_prefix)

    async def dispatch(message: UserMessage) -> None:
        with span("chat.route") as routing:
            decision = route(message.text)
            if routing is not None:
                routing.set_attributes(
                    {"chat.tier": decision.tier, "chat.tool": decision.tool or ""}
                )
        await publish_event(
            broker,
            topology,
            RoutedEvent(
                session_id=message.session_id,
                correlation_id=message.correlation_id,
                message_id=message.reply_message_id,
                user_message_id=message.message_id,
                org_id=message.user.org_id,
                user_id=message.user.user_id,
                tier=decision.tier,
                tool=decision.tool,
                pattern=decision.pattern,
                routed_at=now(),
            ),
        )
        if decision.tool is not None:
            work: ToolRequest | LlmRequest = ToolRequest(
                session_id=message.session_id,
                correlation_id=message.correlation_id,
                message_id=message.reply_message_id,
                call_id=uuid4(),
                tool=decision.tool,
                input=decision.input,
                user=message.user,
                queued_at=now(),
            )
            await publish_work(broker, topology, work, TOOL_REQUEST_KEY)
        else:
            work = LlmRequest(
                session_id=message.session_id,
                correlation_id=message.correlation_id,
                message_id=message.reply_message_id,
                user_message_id=message.message_id,
                text=message.text,
                user=message.user,
                queued_at=now(),
            )
            await publish_work(broker, topology, work, LLM_REQUEST_KEY)
        log.info("routed", extra={"tier": decision.tier, "tool": decision.tool})

    @broker.subscriber(
        topology.orchestrator_inbox,
        topology.events,
        channel=Channel(prefetch_count=settings.orchestrator_prefetch),
        ack_policy=AckPolicy.MANUAL,
        decoder=raw_message,
    )
    async def on_user_message(msg: Delivery) -> None:
        await process_work(msg, UserMessage.model_validate_json, dispatch)
