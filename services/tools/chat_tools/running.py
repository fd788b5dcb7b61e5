"""Runs one tool request (Tier 1) and publishes the whole answer: the tool call, its result and
the answer's text written from it."""

from __future__ import annotations

import asyncio
import logging
import time

from chat_contracts.events import CompleteEvent, ToolCallEvent, ToolResultEvent
from chat_contracts.work import ToolRequest
from chat_runtime.publisher import Publisher
from chat_runtime.tracing import span
from chat_tools.registry import JsonObject, ToolContext, ToolInputError, ToolRegistry

log = logging.getLogger("chat_tools")


class ToolRunner:
    def __init__(self, registry: ToolRegistry, publisher: Publisher, timeout: float) -> None:
        self._registry = registry
        self._publisher = publisher
        self._timeout = timeout

    async def _call(self, request: ToolRequest) -> tuple[JsonObject, bool]:
        """The tool's output and whether it failed (a failure is an output too)."""
        with span("chat.tool.call", **{"chat.tool": request.tool}) as call_span:
            is_error = False
            try:
                output: JsonObject = await asyncio.wait_for(
                    self._registry.call(
                        request.tool, request.input, ToolContext(user=request.user)
                    ),
                    timeout=self._timeout,
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
        return output, is_error

    def _answer(self, request: ToolRequest, output: JsonObject, is_error: bool) -> str:
        tool = self._registry.get(request.tool)
        if tool is not None and not is_error:
            return tool.answer(output)
        return f"Sorry, the {request.tool} tool failed: {output.get('error', 'unknown error')}."

    async def run(self, request: ToolRequest) -> None:
        common = {
            "session_id": request.session_id,
            "correlation_id": request.correlation_id,
            "message_id": request.message_id,
            "org_id": request.user.org_id,
            "user_id": request.user.user_id,
        }
        call = {**common, "call_id": request.call_id, "tool": request.tool, "input": request.input}
        await self._publisher.publish(ToolCallEvent(seq=1, **call))
        started = time.perf_counter()
        output, is_error = await self._call(request)
        latency_ms = (time.perf_counter() - started) * 1000
        await self._publisher.publish(
            ToolResultEvent(seq=2, output=output, is_error=is_error, latency_ms=latency_ms, **call)
        )
        text = self._answer(request, output, is_error)
        await self._publisher.publish(CompleteEvent(seq=3, text=text, tool=request.tool, **common))
        log.info(
            "tool call done",
            extra={"tool": request.tool, "is_error": is_error, "latency_ms": round(latency_ms, 2)},
        )
