"""Streams one answer per LLM request and publishes it as token events on the session's key.

Issue 8 (docs/decisions/0006-issue8-streams-that-survive.md): each delivery of a request is an
attempt (`x-delivery-count` + 1) and every event says which; an answer can be stopped, waits for
(or refuses, or interrupts) the session's answer in progress, reports its usage while it
streams, and is given up (not acknowledged, so RabbitMQ redelivers it) when the broker is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable
from typing import Any, Final, NoReturn
from uuid import uuid4

from faststream.middlewares import AckPolicy
from faststream.rabbit import Channel, RabbitBroker

from chat_llm_worker.batcher import TokenBatch, TokenBatcher
from chat_llm_worker.generations import Generation, Generations
from chat_llm_worker.history_client import (
    Breaker,
    HistoryClient,
    OutageAllowance,
)
from chat_llm_worker.link import WorkerLink
from chat_llm_worker.providers import Provider, ProviderError, ProviderRequest, ProviderStream
from chat_llm_worker.settings import LlmWorkerSettings
from chat_shared.contracts import (
    AnyWorkerControl,
    BudgetReply,
    CallStatus,
    CompleteEvent,
    ErrorEvent,
    HoldPrice,
    LlmCall,
    LlmRequest,
    ProgressEvent,
    QueuedEvent,
    ReplayReply,
    RetryingEvent,
    StartReply,
    StopRequest,
    TokenEvent,
    Usage,
    now,
)
from chat_shared.pricing import cost, max_cost
from chat_shared.protocol import ErrorCode
from chat_shared.runtime import Delivery, process_work, publish_event, raw_message
from chat_shared.timeline import mark_first_output, mark_model_called, stamp
from chat_shared.topology import MAX_DELIVERIES, Topology
from chat_shared.tracing import inject_headers, span

log = logging.getLogger("chat_llm_worker")

BUDGET_MESSAGE = (
    "Your organisation's monthly AI budget is used up, so I can't ask the AI model right now. "
    "Commands such as “who am I” still work. Ask your organisation's administrator to raise "
    "the budget."
)
UNAVAILABLE_MESSAGE = "The chat history service did not answer in time. Try again in a moment."
RETRYING_MESSAGE = "The answer was interrupted; starting again."
BUSY_MESSAGE = (
    "An answer is still being written in this chat. Wait for it or stop it, then send your "
    "message again."
)
FAILED_MESSAGE = (
    "This answer failed several times in a row, so it was set aside. Try sending your message "
    "again; if it keeps failing, tell your administrator."
)
# How often a queued answer asks for the session's turn again: soon at first (the answer before
# has usually just ended, and history frees the turn as it persists its final event, tens of
# milliseconds later), then less and less often, down to every CLAIM_INTERVAL_SECONDS.
CLAIM_FIRST_RETRY_SECONDS = 0.02
CLAIM_INTERVAL_SECONDS = 0.25
# BUSY_POLICY=reject: how long a message is still busy before it is refused.
REJECT_AFTER_SECONDS = 1.0
# An interrupted call's usage is published once the broker is back: tried this often, this far
# apart, then given up (history marks the call from its last progress report).
INTERRUPTED_REPORT_TRIES = 30
INTERRUPTED_REPORT_PAUSE_SECONDS = 1.0
# How long an answer waits for the worker's lost broker link before it gives the attempt up.
LINK_WAIT_SECONDS = 30.0


class Ended(enum.Enum):
    ENDED = "ended"


# `take_turn`: the answer ended before its model call (refused, or stopped while it waited).
ENDED: Final = Ended.ENDED


class AttemptAbandoned(Exception):
    """The worker lost the broker mid-answer: the request is not acknowledged, and RabbitMQ
    delivers it again (to this worker once it reconnects, or to another)."""


def attempt_of(msg: Delivery) -> tuple[int, bool]:
    """The attempt a delivery is, and whether it is the last one before the quorum queue
    dead-letters the request (RabbitMQ 3.10: deliveries with x-delivery-count 0..limit)."""
    deliveries = int(msg.headers.get("x-delivery-count") or 0)
    return deliveries + 1, deliveries >= MAX_DELIVERIES


def register(
    broker: RabbitBroker, settings: LlmWorkerSettings, provider: Provider, link: WorkerLink
) -> Generations:
    topology = Topology(settings.broker_prefix)
    generations = Generations(settings.replay_grace_seconds)
    history = HistoryClient(
        link.rpc,
        topology,
        settings.history_rpc_timeout_seconds,
        Breaker(settings.history_breaker_seconds),
    )
    outage = OutageAllowance(settings.budget_outage_allowance_usd)
    window = (
        asyncio.Semaphore(settings.token_publish_window) if settings.token_publish_window else None
    )
    price = settings.model_prices[provider.model]
    background: set[asyncio.Task[None]] = set()

    def on_control(control: AnyWorkerControl) -> ReplayReply | None:
        if isinstance(control, StopRequest):
            if generations.stop(control):
                log.info("stopping an answer", extra={"message_id": str(control.message_id)})
            return None
        return generations.replay(control)

    link.on_control = on_control
    link.on_lost = generations.abandon_all

    def ids(gen: Generation) -> dict[str, Any]:
        request = gen.request
        return {
            "session_id": request.session_id,
            "correlation_id": request.correlation_id,
            "message_id": request.message_id,
            "org_id": request.user.org_id,
            "user_id": request.user.user_id,
        }

    async def final(gen: Generation, event: CompleteEvent | ErrorEvent) -> None:
        # Stamped here so that a replay sends it as it was published (stamping is idempotent).
        stamped = stamp(event)
        assert isinstance(stamped, CompleteEvent | ErrorEvent)
        await publish_event(broker, topology, stamped)
        gen.record(stamped)

    async def fail(
        gen: Generation,
        code: str,
        message: str,
        *,
        retryable: bool = False,
        partial_text: str = "",
        llm_call: LlmCall | None = None,
    ) -> None:
        event = ErrorEvent(
            **ids(gen),
            seq=gen.seq + 1,
            attempt=gen.attempt,
            code=code,
            message=message,
            retryable=retryable,
            partial_text=partial_text,
            llm_call=llm_call,
        )
        await final(gen, event)

    async def stopped(gen: Generation, text: str = "", call: LlmCall | None = None) -> None:
        event = CompleteEvent(
            **ids(gen),
            seq=gen.seq + 1,
            attempt=gen.attempt,
            text=text,
            status="stopped",
            model=call.model if call else None,
            provider=call.provider if call else None,
            usage=call.usage if call else None,
            llm_call=call,
        )
        await final(gen, event)
        log.info("answer stopped", extra={"message_id": str(gen.request.message_id)})

    async def generate(request: LlmRequest, attempt: int, *, last: bool) -> None:
        gen = generations.begin(request, attempt)
        try:
            await answer(gen)
        except Exception:
            # Lost broker link or not, the request is dead-lettered after this delivery.
            if last:
                await give_up(gen)
            else:
                generations.drop(gen)
            raise
        except BaseException:
            generations.drop(gen)
            raise
        generations.end(gen)

    async def give_up(gen: Generation) -> None:
        """The last allowed delivery failed: say so before RabbitMQ sets the request aside."""
        try:
            await fail(gen, ErrorCode.FAILED, FAILED_MESSAGE)
        except Exception:
            log.exception("could not tell the user that the answer failed")
            generations.drop(gen)
            return
        generations.end(gen)

    async def answer(gen: Generation) -> None:
        request = gen.request
        if gen.attempt > 1:
            await publish_event(
                broker,
                topology,
                RetryingEvent(**ids(gen), attempt=gen.attempt, reason=RETRYING_MESSAGE),
            )
        if gen.stopped:  # a stop overtook the request while it was queued
            await stopped(gen)
            return
        # The link publishes the tokens: when it is lost, the attempt would be too. Waiting for
        # it keeps a short outage from using up the request's deliveries.
        if not await link.wait_connected(LINK_WAIT_SECONDS):
            raise AttemptAbandoned
        started = await take_turn(gen)
        if started is ENDED:
            return
        prompt = ProviderRequest(
            system=settings.system_prompt,
            turns=started.turns if started is not None else [],
            text=request.text,
            max_tokens=settings.llm_max_tokens,
        )
        if not await hold_budget(gen, prompt, started.budget if started is not None else None):
            return
        if gen.stopped:
            await stopped(gen)
            return
        mark_model_called()
        # The model's first token is an event on this span (see chat_shared.timeline.stamp).
        with span("chat.llm.stream", **{"chat.llm.provider": provider.name}):
            await stream_answer(gen, provider.stream(prompt))

    async def hold_budget(
        gen: Generation, prompt: ProviderRequest, budget: BudgetReply | None
    ) -> bool:
        """Whether the call may go ahead: history's hold (`budget`), or, while history is
        unavailable (None), the org's outage allowance."""
        request = gen.request
        if budget is None:
            hold = max_cost(price, prompt.prompt_chars(), prompt.max_tokens)
            if outage.take(request.user.org_id, hold):
                log.warning("history unavailable: answering on the outage allowance")
                return True
            await fail(gen, ErrorCode.UNAVAILABLE, UNAVAILABLE_MESSAGE, retryable=True)
            return False
        outage.reset()
        if not budget.allowed:
            log.info("budget exceeded", extra={"org_id": str(request.user.org_id)})
            await fail(gen, ErrorCode.BUDGET_EXCEEDED, BUDGET_MESSAGE)
            return False
        return True

    async def take_turn(gen: Generation) -> StartReply | Ended | None:
        """Claim the session's turn per BUSY_POLICY, with the answer's earlier turns and budget
        hold (`StartAnswer`); None when history is unavailable, ENDED when the answer ended
        instead (refused, or stopped while it waited)."""
        request = gen.request
        interrupt = settings.busy_policy == "interrupt"
        queued = False
        reject_after = asyncio.get_running_loop().time() + REJECT_AFTER_SECONDS
        hold = HoldPrice(
            input_per_mtok=price.input_per_mtok,
            output_per_mtok=price.output_per_mtok,
            prompt_chars=len(settings.system_prompt) + len(request.text),
            max_tokens=settings.llm_max_tokens,
        )
        pause = CLAIM_FIRST_RETRY_SECONDS
        while True:
            reply = await history.start(
                request,
                context_limit=settings.context_turns,
                interrupt=interrupt,
                stale_after_seconds=settings.turn_stale_seconds,
                hold=hold,
            )
            if reply is None or reply.turn.status == "claimed":
                holder = reply.turn.holder_message_id if reply is not None else None
                if interrupt and holder is not None and holder != request.message_id:
                    await link.broadcast_stop(
                        StopRequest(
                            session_id=request.session_id,
                            message_id=holder,
                            org_id=request.user.org_id,
                            user_id=request.user.user_id,
                            requested_at=now(),
                        )
                    )
                return reply
            if settings.busy_policy == "reject":
                # The answer before may have just ended, its final event not yet persisted by
                # history (which frees the turn then): ask again for a moment before refusing.
                if asyncio.get_running_loop().time() < reject_after:
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, CLAIM_INTERVAL_SECONDS)
                    continue
                await fail(gen, ErrorCode.BUSY, BUSY_MESSAGE, retryable=True)
                return ENDED
            if not queued:
                queued = True
                await publish_event(
                    broker,
                    topology,
                    QueuedEvent(**ids(gen), behind_message_id=reply.turn.holder_message_id),
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(gen.woken.wait(), pause)
            pause = min(pause * 2, CLAIM_INTERVAL_SECONDS)
            if gen.lost:
                raise AttemptAbandoned
            if gen.stopped:
                await stopped(gen)
                return ENDED

    def token_publisher(gen: Generation) -> TokenBatcher:
        request = gen.request

        async def publish(batch: TokenBatch) -> None:
            event = TokenEvent(
                session_id=request.session_id,
                correlation_id=request.correlation_id,
                message_id=request.message_id,
                seq=batch.seq,
                attempt=gen.attempt,
                text=batch.text,
                deltas=batch.deltas,
                emitted_at=batch.emitted_at,
            )
            # An answer's first token carries the trace context (as publish_event's do), so the
            # gateway's delivery span joins the turn's trace; the others carry no headers.
            await link.publish_token(event, inject_headers() if batch.seq == 1 else None)
            gen.record(event)

        return TokenBatcher(publish, window)

    def progress(gen: Generation, call: LlmCall) -> ProgressEvent:
        return ProgressEvent(**ids(gen), attempt=gen.attempt, llm_call=call)

    async def report_interrupted(gen: Generation, call: LlmCall) -> None:
        """The abandoned attempt's usage, once the broker takes it again (bounded)."""
        for _ in range(INTERRUPTED_REPORT_TRIES):
            try:
                await asyncio.wait_for(
                    publish_event(broker, topology, progress(gen, call)),
                    INTERRUPTED_REPORT_PAUSE_SECONDS * 5,
                )
                return
            except Exception:
                await asyncio.sleep(INTERRUPTED_REPORT_PAUSE_SECONDS)
        log.warning("gave up reporting an interrupted call's usage")

    def in_background(work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        background.add(task)
        task.add_done_callback(background.discard)

    async def stream_answer(gen: Generation, stream: ProviderStream) -> None:
        started = time.perf_counter()
        ttft_ms: float | None = None
        parts: list[str] = []
        tokens = token_publisher(gen)
        # One call, one id: its progress reports and its final record are one llm_calls row.
        call_id = uuid4()

        def llm_call(status: CallStatus, error_code: str | None = None) -> LlmCall:
            usage = stream.tokens
            return LlmCall(
                call_id=call_id,
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

        def lost(exc: Exception) -> NoReturn:
            # A token publish failed: the broker is gone (or going).
            log.warning("abandoning an answer: %s", exc)
            gen.lost = True
            raise AttemptAbandoned from exc

        async def pump() -> None:
            nonlocal ttft_ms
            async for delta in stream:
                emitted_at = now()
                if ttft_ms is None:
                    ttft_ms = (time.perf_counter() - started) * 1000
                    # The answer's first output, for its timeline and trace (publish_event
                    # does this for events it publishes; tokens take the worker's link).
                    mark_first_output(emitted_at, token=True)
                parts.append(delta)
                # Never waits for the broker: deltas that arrive meanwhile are coalesced.
                try:
                    tokens.add(delta, emitted_at)
                except Exception as exc:  # an earlier token publish failed
                    lost(exc)

        async def flush() -> None:
            try:
                await tokens.flush()
            except Exception as exc:
                lost(exc)

        async def report_progress() -> None:
            while True:
                await asyncio.sleep(settings.progress_interval_seconds)
                try:
                    await asyncio.wait_for(
                        publish_event(broker, topology, progress(gen, llm_call("streaming"))),
                        settings.progress_interval_seconds,
                    )
                except Exception:
                    log.warning("could not report a call's progress", exc_info=True)

        pumping = asyncio.create_task(pump())
        gen.cancel = pumping.cancel
        reporting = asyncio.create_task(report_progress())
        try:
            try:
                await pumping
                await flush()
            except ProviderError as exc:
                await flush()
                call = llm_call("error", exc.code)
                log.warning("llm call failed", extra={"code": exc.code, "seq": gen.seq})
                await fail(
                    gen,
                    exc.code,
                    exc.message,
                    retryable=exc.retryable,
                    partial_text="".join(parts),
                    llm_call=call,
                )
                return
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if gen.lost or (current is not None and current.cancelling()):
                    raise  # SIGTERM past the grace, or the broker is lost: below
                await flush()
                await stopped(gen, "".join(parts), llm_call("stopped"))
                return
            if gen.lost:  # the stream ended as the connection was lost
                raise AttemptAbandoned
        except (asyncio.CancelledError, AttemptAbandoned):
            await tokens.aclose()
            interrupted = llm_call("interrupted")
            if gen.lost:
                log.warning("broker lost mid-answer: the request will be delivered again")
                in_background(report_interrupted(gen, interrupted))
                raise AttemptAbandoned from None
            # Stopping past the grace: one quick try on the link (FastStream's connection is
            # closing already), the process is about to end.
            try:
                await asyncio.wait_for(link.publish_progress(progress(gen, interrupted)), 1.0)
            except Exception:
                log.warning("could not report an interrupted call's usage", exc_info=True)
            raise
        finally:
            gen.cancel = None
            reporting.cancel()
            pumping.cancel()
            await tokens.aclose()
        call = llm_call("ok")
        await final(
            gen,
            CompleteEvent(
                **ids(gen),
                seq=gen.seq + 1,
                attempt=gen.attempt,
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
        decoder=raw_message,
    )
    async def on_llm_request(msg: Delivery) -> None:
        attempt, last = attempt_of(msg)

        async def work(request: LlmRequest) -> None:
            await generate(request, attempt, last=last)

        await process_work(msg, LlmRequest.model_validate_json, work)

    return generations
