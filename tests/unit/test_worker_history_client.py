"""The worker's history client while history is down: the breaker and the outage allowance."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from uuid import uuid4

import pytest
from pydantic import BaseModel

from chat_contracts.history import ContextMessage, HoldPrice, StartReply, TurnReply
from chat_contracts.work import LlmRequest
from chat_devtools.questions import an_llm_request as llm_request
from chat_llm_worker.budget import OutageAllowance
from chat_llm_worker.history_client import Breaker, HistoryClient
from tests.support.clock import Clock


class FakeLink:
    """Answers with `reply`, or times out when it is None."""

    def __init__(self) -> None:
        self.reply: bytes | None = None
        self.asked = 0

    async def ask(self, message: BaseModel, expires_in: float) -> bytes:
        self.asked += 1
        if self.reply is None:
            raise TimeoutError
        return self.reply


def test_the_breaker_opens_for_its_pause_then_lets_one_question_through() -> None:
    clock = Clock()
    breaker = Breaker(10, clock)
    assert breaker.allow()
    breaker.failed()
    assert not breaker.allow()
    clock.now = 9.9
    assert not breaker.allow()
    clock.now = 10
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # only one at a time
    breaker.failed()
    clock.now = 15
    assert not breaker.allow()
    clock.now = 20
    assert breaker.allow()
    breaker.succeeded()
    assert breaker.allow() and breaker.allow()


def test_a_probe_that_was_not_answered_for_the_askers_reason_frees_the_next() -> None:
    clock = Clock()
    breaker = Breaker(10, clock)
    breaker.failed()
    clock.now = 10
    assert breaker.allow()
    breaker.release()
    assert breaker.allow()


def test_the_outage_allowance_is_per_org_and_starts_again_next_outage() -> None:
    allowance = OutageAllowance(Decimal("0.50"))
    org, other = uuid4(), uuid4()
    assert allowance.take(org, Decimal("0.30"))
    assert not allowance.take(org, Decimal("0.30"))
    assert allowance.take(org, Decimal("0.20"))
    assert allowance.take(other, Decimal("0.50"))
    allowance.reset()
    assert allowance.take(org, Decimal("0.50"))


def test_no_outage_allowance_refuses_even_free_answers() -> None:
    assert not OutageAllowance(Decimal(0)).take(uuid4(), Decimal(0))


HOLD = HoldPrice(
    input_per_mtok=Decimal(3), output_per_mtok=Decimal(15), prompt_chars=10, max_tokens=1024
)


async def start(client: HistoryClient, request: LlmRequest) -> StartReply | None:
    return await client.start(
        request, context_limit=20, interrupt=False, stale_after_seconds=300, hold=HOLD
    )


async def test_history_down_means_no_context_no_claim_and_no_budget_answer() -> None:
    rpc = FakeLink()
    clock = Clock()
    client = HistoryClient(rpc, 0.1, Breaker(10, clock))
    request = llm_request()
    assert await start(client, request) is None
    assert rpc.asked == 1
    # The breaker is open: nothing is asked.
    assert await start(client, request) is None
    assert rpc.asked == 1
    # After the pause, one question goes through and its answer closes the breaker.
    clock.now = 10
    earlier = StartReply(
        turn=TurnReply(status="claimed"), context=[ContextMessage(role="user", text="earlier")]
    )
    rpc.reply = earlier.model_dump_json().encode()
    reply = await start(client, request)
    assert reply is not None and [t.text for t in reply.context] == ["earlier"]
    assert client.breaker.closed and rpc.asked == 2


async def test_a_cancelled_question_does_not_keep_the_breaker_half_open() -> None:
    clock = Clock()
    breaker = Breaker(10, clock)
    breaker.failed()
    clock.now = 10

    class SlowLink:
        async def ask(self, message: BaseModel, expires_in: float) -> bytes:
            await asyncio.sleep(10)
            return b""

    client = HistoryClient(SlowLink(), 0.1, breaker)
    task = asyncio.create_task(start(client, llm_request()))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.allow()
