"""Executes tool requests and publishes the tool call, its result and the answer."""

from __future__ import annotations

import asyncio
import logging
import time

from faststream.middlewares import AckPolicy
from faststream.rabbit import Channel, RabbitBroker

from chat_shared.contracts import CompleteEvent, ToolCallEvent, ToolRequest, ToolResultEvent
from chat_shared.runtime import Delivery, process_work, publish_event, raw_message
from chat_shared.topology import Topology
from chat_shared.tracing import span
from chat_tools.registry import JsonObject, ToolContext, ToolInputError, ToolRegistry
from chat_tools.settings import ToolsSettings

log = logging.getLogger("chat_tools")


def register(broker: RabbitBroker, settings: ToolsSettings, registry: ToolRegistry) -> None:
    topology = Topology(settings.broker_prefix)

    async def execute(request: ToolRequest) -> None:
        common = {
            "session_id": request.session_id,
            "correlation_id": request.correlation_id,
            "message_id": request.message_id,
            "org_id": request.user.org_id,
            "user_id": request.user.user_id,
            "call_id": request.call_id,
            "tool": request.tool,
        }
        await publish_event(broker, topology, ToolCallEvent(seq=1, input=request.input, **common))
        started = time.perf_counter()
        is_error = False
        with span("chat.tool.call", **{"chat.tool": request.tool}) as call_span:
            try:
                output: JsonObject = await asyncio.wait_for(
                    registry.call(request.tool, request.input, ToolContext(user=request.user)),
                    timeout=settings.tool_timeout_seconds,
                )
            except ToolInputError as exc:
                is_error, output = True, {"error": str(exc)}
            except TimeoutError:
                is_error, output = True, {"error": "the tool did not answer in time"}
            except Exception:
                log.exception("tool failed", extra={"tool": request.tool})
                is_error, output = True, {"error": "the tool failed"}
            if call_span is not None:
                call_span.set_attribute("chat.tool.is_error", is_error)
        latency_ms = (time.perf_counter() - started) * 1000
        await publish_event(
            broker,
            topology,
            ToolResultEvent(
                seq=2,
                input=request.input,
                output=output,
                is_error=is_error,
                latency_ms=latency_ms,
                **common,
            ),
        )
        tool = registry.get(request.tool)
        text = (
            tool.answer(output)
            if tool is not None and not is_error
            else f"Sorry, the {request.tool} tool failed: {output.get('error', 'unknown error')}."
        )
        await publish_event(
            broker,
            topology,
            CompleteEvent(
                seq=3,
                session_id=request.session_id,
                correlation_id=request.correlation_id,
                message_id=request.message_id,
                org_id=request.user.org_id,
                user_id=request.user.user_id,
                text=text,
                tool=request.tool,
            ),
        )
        log.info(
            "tool call done",
            extra={"tool": request.tool, "is_error": is_error, "latency_ms": round(latency_ms, 2)},
        )

    @broker.subscriber(
        topology.tool_requests,
        topology.work,
        channel=Channel(prefetch_count=settings.tools_prefetch),
        ack_policy=AckPolicy.MANUAL,
        decoder=raw_message,
    )
    async def on_tool_request(msg: Delivery) -> None:
        await process_work(msg, ToolRequest.model_validate_json, execute)
