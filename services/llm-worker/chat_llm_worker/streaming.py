"""One model call of an answer, streamed: deltas become token events, usage is reported while it
streams, and the call ends the answer (`complete`, `error`, or `complete` stopped).

The provider's stream is read in a task of its own (`pump`), which a stop cancels: leaving the
Anthropic SDK's stream context closes the HTTP response, so the model stops generating what
nobody will read. Reading never waits for publishing: deltas that arrive while a token publish
waits for its confirm are coalesced (`chat_llm_worker.batcher`).

Three ways an attempt can end early:
- stopped (the user): the tokens it has are flushed, then `complete {status: stopped}` with the
  call's usage so far;
- lost (the worker's broker link failed): `AttemptAbandoned`; the call is reported `interrupted`
  in the background once the broker takes it again, and RabbitMQ delivers the request again;
- cancelled (SIGTERM past the grace): one quick try to report the call `interrupted`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import NoReturn
from uuid import uuid4

from chat_contracts.base import CallStatus, LlmCall, Usage, now
from chat_contracts.events import ProgressEvent, TokenEvent
from chat_llm_worker.batcher import TokenBatch, TokenBatcher
from chat_llm_worker.generations import Generation
from chat_llm_worker.link import WorkerLink
from chat_llm_worker.outcomes import AnswerEvents
from chat_llm_worker.providers import ProviderError, ProviderStream
from chat_llm_worker.settings import Price
from chat_llm_worker.turns import AttemptAbandoned
from chat_runtime.pricing import cost
from chat_runtime.timeline import mark_first_output
from chat_runtime.tracing import inject_headers

log = logging.getLogger("chat_llm_worker")

# An interrupted call's usage is published once the broker is back: tried this often, this far
# apart, then given up (history marks the call from its last progress report).
INTERRUPTED_REPORT_TRIES = 30
INTERRUPTED_REPORT_PAUSE_SECONDS = 1.0


class Background:
    """Tasks that outlive the answer that started them (kept referenced until they end)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def run(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


@dataclass(frozen=True)
class CallContext:
    """What every model call of the worker shares."""

    provider_name: str
    price: Price
    link: WorkerLink
    events: AnswerEvents
    progress_interval: float
    # Token publishes in flight at once for the whole worker (TOKEN_PUBLISH_WINDOW), if capped.
    window: asyncio.Semaphore | None
    background: Background


class ModelCall:
    def __init__(self, context: CallContext, gen: Generation, stream: ProviderStream) -> None:
        self._ctx = context
        self._gen = gen
        self._stream = stream
        self._started = time.perf_counter()
        self._ttft_ms: float | None = None
        self._parts: list[str] = []
        self._tokens = TokenBatcher(self._publish_tokens, context.window)
        # One call, one id: its progress reports and its final record are one llm_calls row.
        self._call_id = uuid4()

    # -- what the call has cost so far ---------------------------------------------------------
    def record(self, status: CallStatus, error_code: str | None = None) -> LlmCall:
        usage = self._stream.tokens
        return LlmCall(
            call_id=self._call_id,
            provider=self._ctx.provider_name,
            model=self._stream.model,
            status=status,
            usage=Usage(
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cost_usd=cost(self._ctx.price, usage.input_tokens, usage.output_tokens),
            ),
            ttft_ms=self._ttft_ms,
            total_ms=(time.perf_counter() - self._started) * 1000,
            error_code=error_code,
        )

    @property
    def text(self) -> str:
        return "".join(self._parts)

    # -- streaming -----------------------------------------------------------------------------
    async def run(self) -> None:
        gen = self._gen
        pumping = asyncio.create_task(self._pump())
        gen.cancel = pumping.cancel
        reporting = asyncio.create_task(self._report_progress())
        try:
            try:
                await pumping
                await self._flush()
            except ProviderError as exc:
                await self._flush()
                log.warning("llm call failed", extra={"code": exc.code, "seq": gen.seq})
                await self._ctx.events.fail(
                    gen,
                    exc.code,
                    exc.message,
                    retryable=exc.retryable,
                    retry_after=exc.retry_after,
                    partial_text=self.text,
                    llm_call=self.record("error", exc.code),
                )
                return
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if gen.lost or (current is not None and current.cancelling()):
                    raise  # SIGTERM past the grace, or the broker is lost: below
                await self._flush()
                await self._ctx.events.stopped(gen, self.text, self.record("stopped"))
                return
            if gen.lost:  # the stream ended as the connection was lost
                raise AttemptAbandoned
        except (asyncio.CancelledError, AttemptAbandoned):
            await self._tokens.aclose()
            report = self._ctx.events.progress(gen, self.record("interrupted"))
            if gen.lost:
                log.warning("broker lost mid-answer: the request will be delivered again")
                self._ctx.background.run(self._report_when_back(report))
                raise AttemptAbandoned from None
            await self._report_before_exit(report)
            raise
        finally:
            gen.cancel = None
            reporting.cancel()
            pumping.cancel()
            await self._tokens.aclose()
        call = self.record("ok")
        await self._ctx.events.complete(gen, self.text, call)
        log.info(
            "llm answer complete",
            extra={
                "model": call.model,
                "output_tokens": call.usage.output_tokens,
                "ttft_ms": round(self._ttft_ms or 0, 1),
                "total_ms": round(call.total_ms, 1),
            },
        )

    async def _pump(self) -> None:
        async for delta in self._stream:
            emitted_at = now()
            if self._ttft_ms is None:
                self._ttft_ms = (time.perf_counter() - self._started) * 1000
                # The answer's first output, for its timeline and trace (the publisher does this
                # for the events it stamps; tokens take the worker's link).
                mark_first_output(emitted_at, token=True)
            self._parts.append(delta)
            # Never waits for the broker: deltas that arrive meanwhile are coalesced.
            try:
                self._tokens.add(delta, emitted_at)
            except Exception as exc:  # an earlier token publish failed
                self._lost(exc)

    async def _publish_tokens(self, batch: TokenBatch) -> None:
        request = self._gen.request
        event = TokenEvent(
            session_id=request.session_id,
            correlation_id=request.correlation_id,
            message_id=request.message_id,
            seq=batch.seq,
            attempt=self._gen.attempt,
            text=batch.text,
            deltas=batch.deltas,
            emitted_at=batch.emitted_at,
        )
        # An answer's first token carries the trace context (as the publisher's events do), so
        # the gateway's delivery span joins the message's trace; the others carry no headers.
        await self._ctx.link.publish_token(event, inject_headers() if batch.seq == 1 else None)
        self._gen.record(event)

    async def _flush(self) -> None:
        try:
            await self._tokens.flush()
        except Exception as exc:
            self._lost(exc)

    def _lost(self, exc: Exception) -> NoReturn:
        # A token publish failed: the broker is gone (or going).
        log.warning("abandoning an answer: %s", exc)
        self._gen.lost = True
        raise AttemptAbandoned from exc

    async def _report_progress(self) -> None:
        interval = self._ctx.progress_interval
        while True:
            await asyncio.sleep(interval)
            try:
                report = self._ctx.events.progress(self._gen, self.record("streaming"))
                await asyncio.wait_for(self._ctx.events.publish(report), interval)
            except Exception:
                log.warning("could not report a call's progress", exc_info=True)

    # -- an attempt given up -------------------------------------------------------------------
    async def _report_before_exit(self, report: ProgressEvent) -> None:
        """Stopping past the grace: one quick try on the link (FastStream's connection is
        closing already), the process is about to end."""
        try:
            await asyncio.wait_for(self._ctx.link.publish(report), 1.0)
        except Exception:
            log.warning("could not report an interrupted call's usage", exc_info=True)

    async def _report_when_back(self, report: ProgressEvent) -> None:
        """The abandoned attempt's usage, once the broker takes it again (bounded)."""
        for _ in range(INTERRUPTED_REPORT_TRIES):
            try:
                await asyncio.wait_for(
                    self._ctx.events.publish(report), INTERRUPTED_REPORT_PAUSE_SECONDS * 5
                )
                return
            except Exception:
                await asyncio.sleep(INTERRUPTED_REPORT_PAUSE_SECONDS)
        log.warning("gave up reporting an interrupted call's usage")
