"""What the gateway measures and reports: deliveries and open sockets.

Per token event the gateway does a modulo and, with tracing on, one header lookup: the delivery
lag is sampled (every event but tokens, and one token in `LAG_SAMPLE_EVERY`, starting with the
first), because a histogram record costs about as much as the rest of the gateway's
telemetry put together (docs/observability.md). Only an answer's first event and its last are
traced (see chat_runtime.tracing), and only the first is reported to history for the message's
timeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from typing import Any
from uuid import UUID

from opentelemetry.metrics import CallbackOptions, Observation

from chat_contracts.events import DeliveredEvent, StreamEvent, TokenEvent
from chat_gateway.hub import SessionHub
from chat_runtime.telemetry import instruments
from chat_runtime.tracing import TRACEPARENT, consumer_span, tracing_enabled

log = logging.getLogger("chat_gateway.telemetry")

# Events that become frames for the browser: their delivery is a span of the turn's trace.
FRAME_EVENTS = frozenset({"token", "tool_call", "tool_result", "complete", "error"})
_UNTRACED: AbstractContextManager[Any] = contextlib.nullcontext()
# Tokens 1, 17, 33, ... of each answer are timed.
LAG_SAMPLE_EVERY = 16


def delivery_span(
    routing_key: str, headers: Mapping[str, Any] | None
) -> AbstractContextManager[Any]:
    """A span for handing a traced event to the sockets; nothing for everything else."""
    if not tracing_enabled() or not headers or TRACEPARENT not in headers:
        return _UNTRACED
    event = routing_key.rsplit(".", 1)[-1]
    if event not in FRAME_EVENTS:
        return _UNTRACED
    return consumer_span(f"chat.deliver {event}", headers)


class Deliveries:
    """Observes each answer event handed to this replica's sockets."""

    def __init__(
        self,
        publish: Callable[[DeliveredEvent], Awaitable[None]],
        org_of: Callable[[UUID], UUID | None],
    ) -> None:
        self._publish = publish
        self._org_of = org_of
        self._tasks: set[asyncio.Task[None]] = set()
        self._lag = instruments().delivery_lag

    def delivered(self, event: StreamEvent) -> None:
        seq = event.seq
        if seq % LAG_SAMPLE_EVERY != 1 and isinstance(event, TokenEvent):
            return  # the token path
        now = time.time()
        if event.emitted_at is not None:
            self._lag.record(now - event.emitted_at)
        org_id = self._org_of(event.session_id) if seq == 1 else None
        if org_id is not None:
            report = DeliveredEvent(
                session_id=event.session_id,
                correlation_id=event.correlation_id,
                message_id=event.message_id,
                org_id=org_id,
                seq=event.seq,
                delivered_at=now,
            )
            task = asyncio.create_task(self._report(report))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _report(self, event: DeliveredEvent) -> None:
        try:
            await self._publish(event)
        except Exception:  # the timeline misses one hop; the user misses nothing
            log.warning("could not report a delivery to history", exc_info=True)


_hubs: weakref.WeakSet[SessionHub] = weakref.WeakSet()


def _open_sockets(options: CallbackOptions) -> Iterable[Observation]:
    yield Observation(sum(hub.socket_count for hub in _hubs))


_gauge_registered = False


def watch_sockets(hub: SessionHub) -> None:
    """Report the sockets `hub` holds in the `chat.gateway.open_sockets` gauge."""
    global _gauge_registered
    _hubs.add(hub)
    if not _gauge_registered:
        _gauge_registered = True
        instruments().meter.create_observable_gauge(
            "chat.gateway.open_sockets",
            callbacks=[_open_sockets],
            unit="{socket}",
            description="WebSockets open on this gateway replica.",
        )
