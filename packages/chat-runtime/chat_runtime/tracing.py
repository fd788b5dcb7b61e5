"""Traces of a user message across the services: attributes, propagation, spans.

One user message is one trace. The gateway starts it when a `send` frame arrives and writes
the W3C `traceparent` and `baggage` headers on the AMQP message; the FastStream services read
and write them with `ChatTelemetryMiddleware` (FastStream's `RabbitTelemetryMiddleware`,
narrowed as below); the gateway reads them back when it delivers the answer's events.

The baggage carries the question's ids (`chat.correlation_id`, `chat.session_id`,
`chat.message_id`, `chat.reply_message_id`, `chat.org_id`), never text or personal data.
Wherever a message of the question is handled they are bound to the task, and
`ChatAttributesProcessor` copies them onto every span started there: so every span of the
trace carries them, FastStream's own spans included.

Token events are not traced: no span, no header. Only the first token of an answer is (its
publish and its delivery), and the model's first token is an event on the LLM span.

Everything here is a no-op until `chat_runtime.telemetry.setup_telemetry` enables tracing.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from faststream.opentelemetry.middleware import BaseTelemetryMiddleware
from faststream.rabbit.opentelemetry import RabbitTelemetryMiddleware
from faststream.rabbit.opentelemetry.provider import RabbitTelemetrySettingsProvider
from faststream.rabbit.response import RabbitPublishCommand
from opentelemetry import baggage, context, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

__all__ = [
    "CHAT_ATTRIBUTE_PREFIX",
    "FIRST_TOKEN_HEADER",
    "TRACEPARENT",
    "ChatAttributesProcessor",
    "ChatTelemetryMiddleware",
    "add_event",
    "chat_attributes",
    "consumer_span",
    "current_trace_id",
    "enable_tracing",
    "inject_headers",
    "question_span",
    "span",
    "tracing_enabled",
]

CHAT_ATTRIBUTE_PREFIX = "chat."
# Set on the first token event of an answer: the one token publish that is traced.
FIRST_TOKEN_HEADER = "x-chat-first-token"  # noqa: S105 - a header name  # nosec B105
TOKEN_SUFFIX = ".token"  # noqa: S105 - a routing-key suffix  # nosec B105
TRACEPARENT = "traceparent"

_TRACE = TraceContextTextMapPropagator()
_BAGGAGE = W3CBaggagePropagator()
_enabled = False
# The question's ids, bound while a message of the question is handled (see the module docstring).
_chat_attributes: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "chat_attributes", default=None
)
_SESSION_SEGMENT = re.compile(r"\.session\.[0-9a-f-]{36}\.")
_REPLY_QUEUE = re.compile(r"amq\.rabbitmq\.reply-to\..*$")


def enable_tracing() -> None:
    global _enabled
    _enabled = True


def tracing_enabled() -> bool:
    return _enabled


def _tracer() -> trace.Tracer:
    return trace.get_tracer("agentchat")


def chat_attributes(
    *,
    correlation_id: object,
    session_id: object,
    message_id: object,
    reply_message_id: object,
    org_id: object,
) -> dict[str, str]:
    """The ids every span of a question carries."""
    return {
        "chat.correlation_id": str(correlation_id),
        "chat.session_id": str(session_id),
        "chat.message_id": str(message_id),
        "chat.reply_message_id": str(reply_message_id),
        "chat.org_id": str(org_id),
    }


class ChatAttributesProcessor(SpanProcessor):
    """Copies the question's ids bound to the current task onto every span started in it."""

    def on_start(self, span: SdkSpan, parent_context: Context | None = None) -> None:
        attributes = _chat_attributes.get()
        if attributes:
            span.set_attributes(attributes)

    def on_end(self, span: ReadableSpan) -> None:
        return None


class _HeaderGetter(Getter[Mapping[str, Any]]):
    """Reads AMQP headers, whose string values may arrive as bytes."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get(key)
        if value is None:
            return None
        return [value.decode() if isinstance(value, bytes) else str(value)]

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return list(carrier)


_GETTER = _HeaderGetter()


def _chat_baggage(headers: Mapping[str, Any]) -> dict[str, str]:
    entries = baggage.get_all(_BAGGAGE.extract(headers, getter=_GETTER))
    return {
        key: str(value) for key, value in entries.items() if key.startswith(CHAT_ATTRIBUTE_PREFIX)
    }


def inject_headers(headers: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The current trace context and the question's ids as AMQP headers (None when tracing is
    off)."""
    if not _enabled:
        return headers
    headers = {} if headers is None else headers
    _TRACE.inject(headers)
    attributes = _chat_attributes.get()
    if attributes:
        ctx = context.get_current()
        for key, value in attributes.items():
            ctx = baggage.set_baggage(key, value, ctx)
        _BAGGAGE.inject(headers, ctx)
    return headers


@contextmanager
def _bound(attributes: Mapping[str, str] | None) -> Iterator[None]:
    if not attributes:
        yield
        return
    token = _chat_attributes.set(attributes)
    try:
        yield
    finally:
        _chat_attributes.reset(token)


@contextmanager
def question_span(
    name: str, attributes: Mapping[str, str], kind: SpanKind = SpanKind.SERVER
) -> Iterator[Span | None]:
    """The root span of a question, with its ids bound for every span started inside.

    A new trace, whatever span is current (a WebSocket lives for many questions, and FastAPI may
    have a span open for the whole connection): one user message is one trace.
    """
    if not _enabled:
        yield None
        return
    with (
        _bound(attributes),
        _tracer().start_as_current_span(name, context=Context(), kind=kind) as root,
    ):
        yield root


@contextmanager
def consumer_span(name: str, headers: Mapping[str, Any] | None) -> Iterator[Span | None]:
    """A span continuing the trace whose context `headers` carry (nothing if they carry none)."""
    if not _enabled or not headers or TRACEPARENT not in headers:
        yield None
        return
    parent = _TRACE.extract(headers, getter=_GETTER)
    with (
        _bound(_chat_baggage(headers)),
        _tracer().start_as_current_span(name, context=parent, kind=SpanKind.CONSUMER) as current,
    ):
        yield current


@contextmanager
def span(name: str, **attributes: AttributeValue) -> Iterator[Span | None]:
    """An internal span of the current trace (nothing when tracing is off)."""
    if not _enabled:
        yield None
        return
    with _tracer().start_as_current_span(name, attributes=attributes) as current:
        yield current


def add_event(name: str, **attributes: AttributeValue) -> None:
    """An event on the current span (a point in time worth seeing, such as the first token)."""
    if _enabled:
        trace.get_current_span().add_event(name, attributes)


def current_trace_id() -> str | None:
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else None


# -- FastStream ---------------------------------------------------------------------------------


def _span_destination(name: str) -> str:
    """Span names must not grow with the data: `….session.<id>.token` → `….session.*.token`."""
    return _REPLY_QUEUE.sub("amq.rabbitmq.reply-to", _SESSION_SEGMENT.sub(".session.*.", name))


class _ChatSettingsProvider(RabbitTelemetrySettingsProvider):
    def get_consume_destination_name(self, msg: Any) -> str:
        return _span_destination(super().get_consume_destination_name(msg))

    def get_publish_destination_name(self, cmd: RabbitPublishCommand) -> str:
        return _span_destination(super().get_publish_destination_name(cmd))


class _ChatScope(BaseTelemetryMiddleware[RabbitPublishCommand]):
    _consumed: Mapping[str, str] | None = None

    async def consume_scope(self, call_next: Any, msg: Any) -> Any:
        self._consumed = _chat_baggage(msg.headers)
        with _bound(self._consumed):
            return await super().consume_scope(call_next, msg)

    async def publish_scope(self, call_next: Any, msg: RabbitPublishCommand) -> Any:
        # The token path: no span and no header, except for an answer's first token.
        if msg.destination.endswith(TOKEN_SUFFIX) and FIRST_TOKEN_HEADER not in msg.headers:
            return await call_next(msg)
        # A reply to a request is published by the consuming scope, after the handler.
        with _bound(self._consumed):
            return await super().publish_scope(call_next, msg)


class ChatTelemetryMiddleware(RabbitTelemetryMiddleware):
    """FastStream's RabbitMQ telemetry, with the question's ids bound on consume, low-cardinality
    span names and untraced token publishes."""

    def __init__(self) -> None:
        super().__init__()
        self._settings_provider_factory = lambda _: _ChatSettingsProvider()

    def __call__(self, msg: Any | None, /, *, context: Any) -> _ChatScope:
        return _ChatScope(
            msg,
            tracer=self._tracer,
            metrics_container=self._metrics,
            settings_provider_factory=self._settings_provider_factory,
            context=context,
        )
