"""The AMQP writer that joins the frames queued in one turn of the loop (amqp_writer)."""

from __future__ import annotations

import asyncio
import inspect

import aiormq.connection
from aiormq.abc import ChannelFrame

from chat_runtime import amqp_writer
from chat_runtime.amqp_writer import CoalescingFrameGenerator


def _frame(payload: bytes, *, waits: bool = False, closes: bool = False) -> ChannelFrame:
    future = asyncio.get_running_loop().create_future() if waits else None
    return ChannelFrame(payload=payload, should_close=closes, drain_future=future)


async def test_frames_queued_in_the_same_turn_leave_in_one_write_in_order() -> None:
    queue: asyncio.Queue[ChannelFrame] = asyncio.Queue()
    frames = CoalescingFrameGenerator(queue)

    async def publish(payload: bytes) -> None:
        queue.put_nowait(_frame(payload))

    # The first frame wakes the writer; the other publishers are ready in the same turn.
    queue.put_nowait(_frame(b"a"))
    tasks = [asyncio.create_task(publish(p)) for p in (b"b", b"c")]
    written = await frames.__anext__()
    await asyncio.gather(*tasks)

    assert written.payload == b"abc"
    assert queue.empty()


async def test_a_lone_frame_is_written_as_it_is() -> None:
    queue: asyncio.Queue[ChannelFrame] = asyncio.Queue()
    lone = _frame(b"only", waits=True)
    queue.put_nowait(lone)

    assert await CoalescingFrameGenerator(queue).__anext__() is lone


async def test_every_waiter_of_a_joined_write_is_woken_only_when_it_is_drained() -> None:
    queue: asyncio.Queue[ChannelFrame] = asyncio.Queue()
    first, second, third = _frame(b"1", waits=True), _frame(b"2"), _frame(b"3", waits=True)
    for frame in (first, second, third):
        queue.put_nowait(frame)

    written = await CoalescingFrameGenerator(queue).__anext__()

    assert written.payload == b"123"
    assert written.should_drain
    assert first.drain_future is not None and third.drain_future is not None
    assert not first.drain_future.done() and not third.drain_future.done()
    written.drain()  # what aiormq's writer does once the write is drained
    assert first.drain_future.done() and third.drain_future.done()
    assert not written.should_drain


async def test_a_closing_frame_ends_the_write_and_what_follows_waits() -> None:
    queue: asyncio.Queue[ChannelFrame] = asyncio.Queue()
    for frame in (_frame(b"x"), _frame(b"close", closes=True), _frame(b"after")):
        queue.put_nowait(frame)

    written = await CoalescingFrameGenerator(queue).__anext__()

    assert written.payload == b"xclose"
    assert written.should_close
    assert queue.qsize() == 1


async def test_one_write_is_bounded() -> None:
    queue: asyncio.Queue[ChannelFrame] = asyncio.Queue()
    big = b"z" * (amqp_writer.MAX_WRITE_BYTES // 2)
    for _ in range(4):
        queue.put_nowait(_frame(big))

    written = await CoalescingFrameGenerator(queue).__anext__()

    assert len(written.payload) == amqp_writer.MAX_WRITE_BYTES
    assert queue.qsize() == 2


def test_install_reaches_the_name_aiormq_writer_reads() -> None:
    """The patch works only while aiormq's writer builds its iterator from this module-level
    name; a new aiormq that stops doing so must fail here, not silently lose the joining."""
    source = inspect.getsource(aiormq.connection.Connection._Connection__writer)  # type: ignore[attr-defined]
    assert "FrameGenerator(self.write_queue)" in source
    amqp_writer.install()
    assert aiormq.connection.FrameGenerator is CoalescingFrameGenerator
    assert amqp_writer.installed()
