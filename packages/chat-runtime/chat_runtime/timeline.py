"""The per-message timeline: when each hop of a question's path happened, and where the time went.

Hop times are recorded as the question and its answer go, in wall-clock epoch seconds, by whoever
reaches the hop:

| hop | recorded by | carried to history in |
|---|---|---|
| `received` | gateway, when the `send` frame is accepted | `UserMessage.received_at` |
| `routed` | orchestrator, when the tier is decided | `RoutedEvent.routed_at` |
| `queued` | orchestrator, just before handing the work on | work item → `hops.queued_at` |
| `started` | worker, when it takes the work from its queue | `hops.started_at` |
| `model_called` | LLM worker, when it asks the model (Tier 2) | `hops.model_called_at` |
| `first_output` | worker, when it publishes the answer's first event | `hops.first_output_at` |
| `first_output_delivered` | gateway, when it hands that event to a socket | `DeliveredEvent` |
| `completed` | worker, when it publishes `complete` (or `error`) | the event's `emitted_at` |
| `persisted` | history, when it writes the answer | (itself) |

The worker side is automatic: `process_work` opens a `Handling` for each work item and the
publisher stamps every stream event with its emit time and the terminal event with the hops
its worker reached. A worker only marks what only it knows (`mark_model_called`).
"""

from __future__ import annotations

import contextvars
import itertools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from uuid import UUID

from chat_contracts.base import HopTimes
from chat_contracts.events import CompleteEvent, ErrorEvent, StreamEvent
from chat_contracts.history import MessageTimeline, TimelineHop, TimelineSegment, TimelineSummary
from chat_runtime.tracing import add_event

__all__ = [
    "CHAIN",
    "Handling",
    "build_timeline",
    "handling",
    "mark_first_output",
    "mark_model_called",
    "stamp",
]


@dataclass
class Handling:
    """The hops one worker reaches while it handles one work item."""

    queued_at: float | None
    started_at: float
    model_called_at: float | None = None
    first_output_at: float | None = None

    def hops(self) -> HopTimes:
        return HopTimes(
            queued_at=self.queued_at,
            started_at=self.started_at,
            model_called_at=self.model_called_at,
            first_output_at=self.first_output_at,
        )


_handling: contextvars.ContextVar[Handling | None] = contextvars.ContextVar(
    "handling", default=None
)


@contextmanager
def handling(queued_at: float | None) -> Iterator[Handling]:
    """A worker starts on a work item."""
    current = Handling(queued_at=queued_at, started_at=time.time())
    token = _handling.set(current)
    try:
        yield current
    finally:
        _handling.reset(token)


def mark_model_called() -> None:
    current = _handling.get()
    if current is not None:
        current.model_called_at = time.time()


def mark_first_output(emitted_at: float, *, token: bool) -> None:
    """The answer's first event is being published: a hop of its path, and an event on the
    current span (`first_token`, or `first_output` for a tool call or an error). `stamp` does
    this for the events it stamps; a worker publishing its tokens unstamped calls it for the
    first one."""
    current = _handling.get()
    if current is not None and current.first_output_at is None:
        current.first_output_at = emitted_at
        add_event("first_token" if token else "first_output")


def stamp(event: StreamEvent) -> StreamEvent:
    """The event as it is published: with its emit time (kept if the worker set it) and, if
    it ends the answer, the hops its worker reached.

    The answer's first event is also marked on the current span (`first_token` for a token,
    `first_output` otherwise).
    """
    current = _handling.get()
    emitted_at = event.emitted_at or time.time()
    if event.seq == 1:
        mark_first_output(emitted_at, token=getattr(event, "type", None) == "token")
    if current is not None and isinstance(event, CompleteEvent | ErrorEvent):
        return event.model_copy(update={"emitted_at": emitted_at, "hops": current.hops()})
    if event.emitted_at is not None:
        return event
    # A copy costs a few µs: on the token path the worker sets `emitted_at` as it builds it.
    return event.model_copy(update={"emitted_at": emitted_at})


# -- building the timeline ----------------------------------------------------------------------

# The hops on the path, in order. `first_output_delivered` is a branch off it: it happens while
# the answer is still being generated, so it is a hop but not a segment of the total.
CHAIN = (
    "received",
    "routed",
    "queued",
    "started",
    "model_called",
    "first_output",
    "completed",
    "persisted",
)
SEGMENT_NAMES = {
    "routed": "routing",
    "queued": "dispatch",
    "started": "queue_wait",
    "model_called": "preparation",
    "first_output": "time_to_first_output",
    "completed": "generation",
    "persisted": "persistence",
}


def _ms(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start) * 1000, 3)


def build_timeline(
    *,
    message_id: UUID,
    correlation_id: UUID,
    status: str,
    tier: int | None,
    trace_id: str | None,
    times: dict[str, float | None],
) -> MessageTimeline:
    """Hops, consecutive segments (which add up to the total) and a summary.

    `times` maps hop names (`CHAIN` plus `first_output_delivered`) to epoch seconds or None.
    A hop not reached (a Tier-1 answer asks no model; a pending answer is not persisted yet) is
    left out, and the segment spans from the hop before it.
    """
    origin = times.get("received")
    reached = [(name, times[name]) for name in CHAIN if times.get(name) is not None]
    start = origin if origin is not None else (reached[0][1] if reached else None)

    hops: list[TimelineHop] = []
    for name, at in reached:
        assert at is not None
        hops.append(TimelineHop(name=name, at=at, offset_ms=_ms(start, at) or 0.0))
        if name == "first_output" and times.get("first_output_delivered") is not None:
            delivered = times["first_output_delivered"]
            assert delivered is not None
            hops.append(
                TimelineHop(
                    name="first_output_delivered",
                    at=delivered,
                    offset_ms=_ms(start, delivered) or 0.0,
                )
            )

    segments: list[TimelineSegment] = []
    for (before, began), (name, ended) in itertools.pairwise(reached):
        ms = _ms(began, ended)
        assert ms is not None
        segments.append(TimelineSegment(name=SEGMENT_NAMES[name], start=before, end=name, ms=ms))

    summary = TimelineSummary(
        queue_wait_ms=_ms(times.get("queued"), times.get("started")),
        time_to_first_token_ms=_ms(times.get("model_called"), times.get("first_output")),
        delivery_lag_ms=_ms(times.get("first_output"), times.get("first_output_delivered")),
        first_output_seen_ms=_ms(origin, times.get("first_output_delivered")),
        total_ms=_ms(reached[0][1], reached[-1][1]) if len(reached) > 1 else None,
    )
    return MessageTimeline(
        message_id=message_id,
        correlation_id=correlation_id,
        trace_id=trace_id,
        tier=tier,
        status=status,
        hops=hops,
        segments=segments,
        summary=summary,
    )
