"""The LLM worker's answering, each part on its own, without a broker: the session's turn per
busy policy (`TurnTaker`), the budget gate, and one model call streamed (`ModelCall`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any, cast
from uuid import UUID, uuid4

import pytest
from pydantic import BaseModel

from chat_contracts.control import StopRequest
from chat_contracts.events import CompleteEvent, ErrorEvent, ProgressEvent, QueuedEvent, TokenEvent
from chat_contracts.history import BudgetReply, StartReply, TurnReply
from chat_contracts.work import LlmRequest
from chat_devtools.questions import a_user, an_llm_request
from chat_llm_worker import turns as turns_module
from chat_llm_worker.budget import BudgetGate, OutageAllowance
from chat_llm_worker.generations import Generation, Generations
from chat_llm_worker.history_client import HistoryClient
from chat_llm_worker.link import WorkerLink
from chat_llm_worker.outcomes import AnswerEvents
from chat_llm_worker.providers import ProviderError, ProviderRequest, TokenCount
from chat_llm_worker.settings import LlmWorkerSettings, Price
from chat_llm_worker.streaming import Background, CallContext, ModelCall
from chat_llm_worker.turns import AnswerEnded, TurnTaker
from chat_runtime.publisher import Publisher

PRICE = Price(input_per_mtok=Decimal(3), output_per_mtok=Decimal(15))


class Published:
    """Stands in for the publisher and the worker's link: records what they send."""

    def __init__(self) -> None:
        self.messages: list[BaseModel] = []
        self.fail_tokens_after: int | None = None

    async def publish(self, message: BaseModel, headers: Any = None) -> None:
        self.messages.append(message)

    async def publish_token(self, event: TokenEvent, headers: Any) -> None:
        tokens = [m for m in self.messages if isinstance(m, TokenEvent)]
        if self.fail_tokens_after is not None and len(tokens) >= self.fail_tokens_after:
            raise ConnectionError("the broker is gone")
        self.messages.append(event)

    async def broadcast_stop(self, stop: StopRequest) -> None:
        self.messages.append(stop)

    def of(self, kind: type[BaseModel]) -> list[Any]:
        return [m for m in self.messages if isinstance(m, kind)]


class History:
    """Answers `StartAnswer` with the replies given, the last one for ever after."""

    def __init__(self, *replies: StartReply | None) -> None:
        self._replies = list(replies)
        self.asked = 0

    async def start(self, request: LlmRequest, **_: Any) -> StartReply | None:
        self.asked += 1
        return self._replies.pop(0) if len(self._replies) > 1 else self._replies[0]


def _settings(**overrides: Any) -> LlmWorkerSettings:
    return LlmWorkerSettings(llm_provider="scripted", **overrides)


def _taker(history: History, sent: Published, **settings: Any) -> TurnTaker:
    return TurnTaker(
        _settings(**settings),
        PRICE,
        cast(HistoryClient, history),
        cast(WorkerLink, sent),
        AnswerEvents(cast(Publisher, sent)),
    )


def _busy(holder: UUID) -> StartReply:
    return StartReply(turn=TurnReply(status="busy", holder_message_id=holder))


CLAIMED = StartReply(turn=TurnReply(status="claimed"))


def _gen(request: LlmRequest | None = None) -> Generation:
    return Generations(60).begin(request or an_llm_request(), 1)


async def test_a_queued_answer_says_so_once_and_asks_again_until_the_turn_is_its_own() -> None:
    holder = uuid4()
    history, sent = History(_busy(holder), _busy(holder), _busy(holder), CLAIMED), Published()
    assert await _taker(history, sent).take(_gen()) == CLAIMED
    assert history.asked == 4
    assert [q.behind_message_id for q in sent.of(QueuedEvent)] == [holder]


async def test_reject_refuses_with_busy_after_asking_again_for_a_moment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(turns_module, "REJECT_AFTER_SECONDS", 0.05)
    history, sent = History(_busy(uuid4())), Published()
    gen = _gen()
    with pytest.raises(AnswerEnded):
        await _taker(history, sent, busy_policy="reject").take(gen)
    assert history.asked > 1
    (error,) = sent.of(ErrorEvent)
    assert (error.code, error.retryable, error.seq) == ("busy", True, 1)
    assert gen.events == [error]  # recorded: a replay sends it


async def test_interrupt_takes_the_turn_and_stops_the_answer_that_held_it() -> None:
    holder = uuid4()
    request = an_llm_request()
    taken = StartReply(turn=TurnReply(status="claimed", holder_message_id=holder))
    sent = Published()
    assert await _taker(History(taken), sent, busy_policy="interrupt").take(_gen(request)) == taken
    (stop,) = sent.of(StopRequest)
    assert (stop.message_id, stop.session_id, stop.user_id) == (
        holder,
        request.session_id,
        request.user.user_id,
    )


async def test_a_queued_answer_that_is_stopped_ends_stopped_without_a_model_call() -> None:
    history, sent = History(_busy(uuid4())), Published()
    gen = _gen()
    taking = asyncio.create_task(_taker(history, sent).take(gen))
    await asyncio.sleep(0.05)
    gen.stop()
    with pytest.raises(AnswerEnded):
        await taking
    (stopped,) = sent.of(CompleteEvent)
    assert (stopped.status, stopped.text, stopped.llm_call) == ("stopped", "", None)


async def test_the_budget_gate_uses_the_outage_allowance_only_while_history_is_down() -> None:
    sent = Published()
    gate = BudgetGate(PRICE, OutageAllowance(Decimal("0.02")), AnswerEvents(cast(Publisher, sent)))
    prompt = ProviderRequest(system="s", context=[], text="hello", max_tokens=1000)
    zero = Decimal(0)
    refused = BudgetReply(allowed=False, budget_usd=zero, spent_usd=zero, reserved_usd=zero)
    user = a_user()
    assert await gate.allows(_gen(an_llm_request(user=user)), prompt, None)  # $0.015 of $0.02
    assert not await gate.allows(_gen(an_llm_request(user=user)), prompt, None)  # used up
    assert await gate.allows(_gen(), prompt, None)  # another org's allowance
    assert not await gate.allows(_gen(an_llm_request(user=user)), prompt, refused)
    assert [e.code for e in sent.of(ErrorEvent)] == ["unavailable", "budget_exceeded"]


class Stream:
    """A provider's stream: deltas at a pace, then an error if asked."""

    model = "m-1"

    def __init__(self, deltas: list[str], pause: float = 0.0, fail: bool = False) -> None:
        self._deltas = deltas
        self._pause = pause
        self._fail = fail
        self.tokens = TokenCount(input_tokens=7)

    async def __aiter__(self) -> AsyncIterator[str]:
        for delta in self._deltas:
            await asyncio.sleep(self._pause)
            self.tokens.output_tokens += 1
            yield delta
        if self._fail:
            raise ProviderError("llm_unavailable", "overloaded", retryable=True)


def _call(sent: Published, gen: Generation, stream: Stream) -> ModelCall:
    context = CallContext(
        "test",
        PRICE,
        cast(WorkerLink, sent),
        AnswerEvents(cast(Publisher, sent)),
        progress_interval=60,
        window=None,
        background=Background(),
    )
    return ModelCall(context, gen, stream)


async def test_a_call_streams_tokens_then_completes_with_the_whole_text_and_its_price() -> None:
    sent, gen = Published(), _gen()
    await _call(sent, gen, Stream(["Hel", "lo ", "you"])).run()
    tokens = sent.of(TokenEvent)
    (complete,) = sent.of(CompleteEvent)
    assert "".join(t.text for t in tokens) == complete.text == "Hello you"
    assert complete.seq == tokens[-1].seq + 1 and complete.status == "complete"
    assert complete.llm_call is not None and complete.llm_call.status == "ok"
    assert complete.llm_call.usage.cost_usd == Decimal("0.000066")  # 7 in at $3, 3 out at $15
    assert gen.events == [*tokens, complete]


async def test_a_provider_error_ends_the_answer_with_its_partial_text_and_usage() -> None:
    sent = Published()
    await _call(sent, _gen(), Stream(["par", "tial"], fail=True)).run()
    (error,) = sent.of(ErrorEvent)
    assert (error.code, error.partial_text, error.retryable) == ("llm_unavailable", "partial", True)
    assert error.llm_call is not None and error.llm_call.usage.output_tokens == 2


async def test_a_stop_mid_stream_keeps_what_was_generated() -> None:
    sent, gen = Published(), _gen()
    calling = asyncio.create_task(_call(sent, gen, Stream(["a"] * 100, pause=0.01)).run())
    await asyncio.sleep(0.1)
    gen.stop()
    await asyncio.wait_for(calling, 2)
    (stopped,) = sent.of(CompleteEvent)
    assert stopped.status == "stopped" and 0 < len(stopped.text) < 100
    assert stopped.text == "".join(t.text for t in sent.of(TokenEvent))


async def test_a_token_publish_that_fails_abandons_the_attempt_and_reports_the_call() -> None:
    sent, gen = Published(), _gen()
    sent.fail_tokens_after = 2
    with pytest.raises(turns_module.AttemptAbandoned):
        await _call(sent, gen, Stream(["a"] * 10, pause=0.01)).run()
    assert gen.lost and not sent.of(CompleteEvent)
    await asyncio.sleep(0.05)  # the report goes out in the background
    (report,) = sent.of(ProgressEvent)
    assert report.llm_call.status == "interrupted"
