"""The token batcher: at once when idle, coalesced while a publish is in flight, never reordered."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chat_llm_worker.batcher import TokenBatch, TokenBatcher


class GatedPublisher:
    """Records batches; each publish waits until the test opens the gate (a slow confirm)."""

    def __init__(self, *, gated: bool) -> None:
        self.batches: list[TokenBatch] = []
        self.gate = asyncio.Event()
        if not gated:
            self.gate.set()

    async def __call__(self, batch: TokenBatch) -> None:
        self.batches.append(batch)
        await self.gate.wait()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_when_nothing_is_in_flight_each_delta_is_published_at_once() -> None:
    publish = GatedPublisher(gated=False)
    batcher = TokenBatcher(publish)
    for index, delta in enumerate(["Hel", "lo, ", "wor", "ld"]):
        batcher.add(delta, at=100.0 + index)
        await settle()
    assert await batcher.flush() == 4
    assert [(b.seq, b.text, b.deltas, b.emitted_at) for b in publish.batches] == [
        (1, "Hel", 1, 100.0),
        (2, "lo, ", 1, 101.0),
        (3, "wor", 1, 102.0),
        (4, "ld", 1, 103.0),
    ]


async def test_deltas_that_arrive_during_a_publish_go_out_together() -> None:
    publish = GatedPublisher(gated=True)
    batcher = TokenBatcher(publish)
    batcher.add("a", at=1.0)
    await settle()
    assert [b.text for b in publish.batches] == ["a"]  # published before the next delta came
    batcher.add("b", at=2.0)
    batcher.add("c", at=3.0)
    batcher.add("d", at=4.0)
    await settle()
    assert len(publish.batches) == 1  # still waiting for the first confirm
    publish.gate.set()
    assert await batcher.flush() == 2
    second = publish.batches[1]
    assert (second.seq, second.text, second.deltas) == (2, "bcd", 3)
    assert second.emitted_at == 2.0  # the oldest delta's time: its lag bounds the others'


async def test_answers_sharing_a_window_wait_for_a_slot_and_gather_meanwhile() -> None:
    first, second = GatedPublisher(gated=True), GatedPublisher(gated=False)
    window = asyncio.Semaphore(1)
    a, b = TokenBatcher(first, window), TokenBatcher(second, window)
    a.add("a1", at=1.0)
    await settle()
    b.add("b1", at=2.0)
    await settle()
    b.add("b2", at=3.0)
    await settle()
    assert second.batches == []  # the only slot is taken by a's publish
    first.gate.set()
    await a.flush()
    await b.flush()
    assert [(x.text, x.deltas, x.emitted_at) for x in second.batches] == [("b1b2", 2, 2.0)]


async def test_a_failed_publish_is_reported_by_the_next_add_and_by_flush() -> None:
    async def broken(batch: TokenBatch) -> None:
        raise ConnectionError("broker gone")

    batcher = TokenBatcher(broken)
    batcher.add("a", at=1.0)
    await settle()
    with pytest.raises(ConnectionError):
        batcher.add("b", at=2.0)
    with pytest.raises(ConnectionError):
        await batcher.flush()


async def test_aclose_stops_a_publish_in_flight() -> None:
    publish = GatedPublisher(gated=True)
    batcher = TokenBatcher(publish)
    batcher.add("a", at=1.0)
    await settle()
    await batcher.aclose()
    assert batcher._sender is None


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.one_of(st.text(min_size=1, max_size=4), st.sampled_from(["<release>", "<yield>"])),
        max_size=60,
    )
)
def test_whatever_the_interleaving_nothing_is_lost_doubled_or_reordered(steps: list[str]) -> None:
    async def scenario() -> None:
        publish = GatedPublisher(gated=True)
        batcher = TokenBatcher(publish)
        added: list[str] = []
        for step in steps:
            if step == "<release>":
                publish.gate.set()
                await settle()
                publish.gate.clear()
            elif step == "<yield>":
                await settle()
            else:
                batcher.add(step, at=float(len(added)))
                added.append(step)
        publish.gate.set()
        last = await batcher.flush()
        assert [b.seq for b in publish.batches] == list(range(1, last + 1))
        assert "".join(b.text for b in publish.batches) == "".join(added)
        assert sum(b.deltas for b in publish.batches) == len(added)
        # Each batch is stamped with the time of its first delta.
        position = 0
        for batch in publish.batches:
            assert batch.emitted_at == float(position)
            position += batch.deltas

    asyncio.run(scenario())
