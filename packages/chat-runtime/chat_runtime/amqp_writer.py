"""One socket write for every AMQP frame that is waiting, instead of one write per frame.

aiormq's connection writer takes one frame (a publish: method, header and body) off the
connection's write queue at a time and hands it to the socket: one `send` syscall per message,
and one TCP segment for RabbitMQ to read. When many answers publish in the same iteration of
the event loop (the worker's token events under load), their frames could leave together.
`install()` makes the writer, once it has a frame and nothing else is queued, let the tasks that
are ready in that iteration of the loop run first (one `sleep(0)`, microseconds), then take every
frame that is waiting and write them as one buffer (up to a frame that closes the connection).
Whoever waits for one of them (a drain future) is woken once the joined buffer has been handed to
the socket and drained, as before for their own frame. Frame order is unchanged, and nothing
waits for a frame that is not yet queued: an idle connection still writes each frame at once.

It replaces `aiormq.connection.FrameGenerator`, the iterator the writer reads (aiormq 7.2). The
writer itself, its drains, closing and cancellation stay aiormq's own.
`tests/unit/test_amqp_writer.py` pins the behaviour and fails if aiormq stops reading frames
through that name. Measured: docs/benchmarks.md, "One write per loop iteration".
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import aiormq.connection
from aiormq.abc import ChannelFrame

_ORIGINAL = aiormq.connection.FrameGenerator

# At most this many bytes in one write: the transport copies what the socket does not take.
MAX_WRITE_BYTES = 256 * 1024


@dataclass
class WriterStats:
    """Writes handed to the socket and the frames in them, over every connection of the
    process: frames / writes is how many messages each write carried."""

    writes: int = 0
    frames: int = 0


stats = WriterStats()


@dataclass(frozen=True)
class _Joined(ChannelFrame):
    """Frames written as one; draining it wakes everyone who waits on one of them."""

    waiters: list[asyncio.Future[None]] = field(default_factory=list)

    @property
    def should_drain(self) -> bool:
        return any(not waiter.done() for waiter in self.waiters)

    def drain(self) -> None:
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(None)


class CoalescingFrameGenerator(_ORIGINAL):
    """Yields the next frame joined with every frame already waiting behind it."""

    async def __anext__(self) -> ChannelFrame:
        frame: ChannelFrame = await super().__anext__()
        queue: asyncio.Queue[ChannelFrame] = self.queue
        stats.writes += 1
        stats.frames += 1
        if frame.should_close:
            return frame
        if queue.empty():
            # Let the tasks that are ready in this iteration of the loop queue their frames first.
            # Cancelled here, the writer is closing the connection: this frame is dropped with
            # the rest of the queue, and its publisher's confirm fails as theirs do.
            await asyncio.sleep(0)
            if queue.empty():
                return frame
        payloads = [frame.payload]
        waiters = [frame.drain_future] if frame.drain_future is not None else []
        size = len(frame.payload)
        while not queue.empty() and size < MAX_WRITE_BYTES:
            frame = queue.get_nowait()
            queue.task_done()
            stats.frames += 1
            payloads.append(frame.payload)
            size += len(frame.payload)
            if frame.drain_future is not None:
                waiters.append(frame.drain_future)
            if frame.should_close:
                break
        return _Joined(
            payload=b"".join(payloads),
            should_close=frame.should_close,
            drain_future=waiters[-1] if waiters else None,
            waiters=waiters,
        )


def install() -> None:
    """Use the coalescing iterator in every aiormq connection started from now on."""
    aiormq.connection.FrameGenerator = CoalescingFrameGenerator  # type: ignore[misc]


def installed() -> bool:
    return aiormq.connection.FrameGenerator is CoalescingFrameGenerator
