"""Streams one answer per LLM request and publishes it as token events on the session's key."""

from __future__ import annotations

import asyncio
import logging
import time
from uuid import uuid4

from faststream.middlewares import AckPolicy
from faststream.rabbit import Channel, RabbitBroker
from faststream.rabbit.annotations import RabbitMessage

from chat_llm_worker.batcher import TokenBatch, TokenBatcher
from chat_llm_worker.history_client import HistoryClient
from chat_llm_worker.link import WorkerLink
from chat_llm_worker.pricing import cost, max_cost
from chat_llm_worker.providers import Provider, ProviderError, ProviderRequest, ProviderStream
from chat_llm_worker.settings import LlmWorkerSettings
from chat_shared.contracts import (
    CallStatus,
    CompleteEvent,
    ErrorEvent,
    LlmCall,
    LlmRequest,
    TokenEvent,
    Usage,
    now,
)
from chat_shared.protocol import ErrorCode
from chat_shared.runtime import process_work, publish_event
from chat_shared.timeline import mark_first_output, mark_model_called
from chat_shared.topology import Topology
from chat_shared.tracing import inject_headers, span

log = logging.getLogger("chat_llm_worker")

BUDGET_MESSAGE = (
    "Your organisation's monthly AI budget is used up, so I can't ask the AI model right now. "
    "Commands such as “who am I” still work. Ask your organisation's administrator to raise "
    "the budget."
)
UNAVAILABLE_MESSAGE = "The chat history service did not answer in time. Try again in a moment."


def register(
    broker: RabbitBroker, settings: LlmWorkerSettings, provider: Provider, link: WorkerLink
) -> None:
    topology = Topology(settings.broker_prefix)
    history = HistoryClient(link.rpc, topology, settings.history_rpc_timeout_seconds)
    window = (
        asyncio.Semaphore(settings.token_publish_window) if settings.token_publish_window else None
    )
    price = settings.model_prices[provider.model]

    async def fail(
        request: LlmRequest,
        seq: int,
        code: str,
        message: str,
        *,
        retryable: bool = False,
        partial_text: str = "",
        llm_call: LlmCall | None = None,
    ) -> None:
        event = ErrorEvent(
            session_id=request.session_id,
            correlation_id=request.correlation_id,
            message_id=request.message_id,
            org_id=request.user.org_id,
            user_id=request.user.user_id,
            seq=seq,
            code=code,
            message=message,
            retryable=retryable,
            partial_text=partial_text,
            llm_call=llm_call,
        )
        await publish_event(broker, topology, event)

    async def generate(request: LlmRequest) -> None:
        try:
            turns = await history.context(request, settings.context_turns)
        except TimeoutError:
            await fail(request, 1, ErrorCode.UNAVAILABLE, UNAVAILABLE_MESSAGE, retryable=True)
            return
        prompt = ProviderRequest(
            system=settings.system_prompt,
            turns=turns,
            text=request.text,
            max_tokens=settings.llm_max_tokens,
        )
        hold = max_cost(price, prompt.prompt_chars(), prompt.max_tokens)
        try:
            budget = await history.reserve(request.user.org_id, request.message_id, hold)
        except TimeoutError:
            await fail(request, 1, ErrorCode.UNAVAILABLE, UNAVAILABLE_MESSAGE, retryable=True)
            return
        if not budget.allowed:
            log.info("budget exceeded", extra={"org_id": str(request.user.org_id)})
            await fail(request, 1, ErrorCode.BUDGET_EXCEEDED, BUDGET_MESSAGE)
            return
        mark_model_called()
        # The model's first token is an event on this span (see chat_shared.timeline.stamp).
        with span("chat.llm.stream", **{"chat.llm.provider": provider.name}):
            await stream_answer(request, provider.stream(prompt))

    def token_publisher(request: LlmRequest) -> TokenBatcher:
        async def publish(batch: TokenBatch) -> None:
            event = TokenEvent(
                session_id=request.session_id,
                correlation_id=request.correlation_id,
                message_id=request.message_id,
                seq=batch.seq,
                text=batch.text,
                deltas=batch.deltas,
                emitted_at=batch.emitted_at,
            )
            # An answer's first token carries the trace context (as publish_event's do), so the
            # gateway's delivery span joins the turn's trace; the others carry no headers.
            await link.publish_token(event, inject_headers() if batch.seq == 1 else None)

        return TokenBatcher(publish, window)

    async def stream_answer(request: LlmRequest, stream: ProviderStream) -> None:
        started = time.perf_counter()
        ttft_ms: float | None = None
        parts: list[str] = []
        tokens = token_publisher(request)

        def llm_call(status: CallStatus, error_code: str | None = None) -> LlmCall:
            usage = stream.tokens
            return LlmCall(
                call_id=uuid4(),
                provider=provider.name,
                model=stream.model,
                status=status,
                usage=Usage(
                    input_tokens=usage.input_tokens,
                    output_tokens=usage.output_tokens,
                    cost_usd=cost(price, usage.input_tokens, usage.output_tokens),
                ),
                ttft_ms=ttft_ms,
                total_ms=(time.perf_counter() - started) * 1000,
                error_code=error_code,
            )

        try:
            async for delta in stream:
                emitted_at = now()
                if ttft_ms is None:
                    ttft_ms = (time.perf_counter() - started) * 1000
                    # The answer's first output, for its timeline and trace (publish_event
                    # does this for events it publishes; tokens take the worker's link).
                    mark_first_output(emitted_at, token=True)
                parts.append(delta)
                # Never waits for the broker: deltas that arrive meanwhile are coalesced.
                tokens.add(delta, emitted_at)
            seq = await tokens.flush()
        except ProviderError as exc:
            seq = await tokens.flush()
            call = llm_call("error", exc.code)
            log.warning("llm call failed", extra={"code": exc.code, "seq": seq})
            await fail(
                request,
                seq + 1,
                exc.code,
                exc.message,
                retryable=exc.retryable,
                partial_text="".join(parts),
                llm_call=call,
            )
            return
        finally:
            await tokens.aclose()
        call = llm_call("ok")
        await publish_event(
            broker,
            topology,
            CompleteEvent(
                session_id=request.session_id,
                correlation_id=request.correlation_id,
                message_id=request.message_id,
                org_id=request.user.org_id,
                user_id=request.user.user_id,
                seq=seq + 1,
                text="".join(parts),
                model=call.model,
                provider=call.provider,
                usage=call.usage,
                llm_call=call,
            ),
        )
        log.info(
            "llm answer complete",
            extra={
                "model": call.model,
                "output_tokens": call.usage.output_tokens,
                "ttft_ms": round(ttft_ms or 0, 1),
                "total_ms": round(call.total_ms, 1),
            },
        )

    @broker.subscriber(
        topology.llm_requests,
        topology.work,
        channel=Channel(prefetch_count=settings.llm_concurrency),
        ack_policy=AckPolicy.MANUAL,
    )
    async def on_llm_request(msg: RabbitMessage) -> None:
        await process_work(msg, LlmRequest.model_validate_json, generate)
