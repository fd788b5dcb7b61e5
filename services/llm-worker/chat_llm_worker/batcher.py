"""Adaptive coalescing of one answer's token deltas.

A delta is published at once when nothing is in flight for its answer; the deltas that arrive
while that publish waits for the broker's confirm are joined and go out as one event as soon as
it returns. On an idle box the confirm comes back well before the next delta (tens of ms apart
for a fast model), so every delta is its own event and nothing waits. Under load confirms take
longer, more deltas join each event and the broker carries fewer messages: the window is set by
the broker's own round trip, not by a timer.

The stream is never held up by publishing: `add` only appends, so a slow confirm can no longer
slow down how fast the provider's deltas are read.

Optionally the worker's answers share a window: at most that many token publishes in flight
for the whole worker. An answer whose deltas wait for a free slot keeps gathering them, so under
load the worker sends fewer, larger events before the broker's round trip has to grow.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class TokenBatch:
    """What one token event carries: `seq` counts events, `deltas` the deltas joined in it."""

    seq: int
    text: str
    deltas: int
    emitted_at: float  # when the oldest delta of the batch was added


Publish = Callable[[TokenBatch], Awaitable[None]]


class TokenBatcher:
    def __init__(self, publish: Publish, window: asyncio.Semaphore | None = None) -> None:
        self._publish = publish
        self._window = window
        self._parts: list[str] = []
        self._oldest = 0.0
        self._seq = 0
        self._sender: asyncio.Task[None] | None = None
        self._failure: Exception | None = None

    @property
    def seq(self) -> int:
        """The seq of the last event published or being published."""
        return self._seq

    def add(self, delta: str, at: float) -> None:
        """Queue a delta emitted at `at`; raises if an earlier publish failed."""
        if self._failure is not None:
            raise self._failure
        if not self._parts:
            self._oldest = at
        self._parts.append(delta)
        if self._sender is None:
            self._sender = asyncio.create_task(self._send())

    async def _send(self) -> None:
        try:
            while self._parts:
                if self._window is None:
                    await self._publish_pending()
                else:
                    async with self._window:
                        await self._publish_pending()
        except Exception as exc:  # reported by the next `add` or by `flush`
            self._failure = exc
        finally:
            self._sender = None

    async def _publish_pending(self) -> None:
        # Taken only now: whatever arrived while waiting for the window goes out too.
        parts, self._parts = self._parts, []
        self._seq += 1
        await self._publish(TokenBatch(self._seq, "".join(parts), len(parts), self._oldest))

    async def flush(self) -> int:
        """Wait until every delta added so far is published; the seq of the last event."""
        while self._sender is not None:
            await asyncio.wait({self._sender})
        if self._failure is not None:
            raise self._failure
        return self._seq

    async def aclose(self) -> None:
        """Stop publishing (on cancellation or failure of the stream)."""
        sender = self._sender
        if sender is not None:
            sender.cancel()
            await asyncio.wait({sender})
