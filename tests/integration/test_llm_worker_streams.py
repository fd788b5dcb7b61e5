"""The LLM worker's answers on real RabbitMQ: attempts, stop, replay, busy policies,
progress reports and a history outage.

The worker runs in this process (its handlers, link and provider exactly as in the service);
a stand-in for the history service answers its RPC questions the way each test needs (or not
at all: an outage), and the tests watch the session events and the `llm-control` fanout.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from faststream.rabbit import RabbitBroker

from chat_contracts.base import UserRef
from chat_contracts.control import ReplayReply, ReplayRequest, StopRequest, worker_control_adapter
from chat_contracts.events import (
    AnySessionEvent,
    CompleteEvent,
    ErrorEvent,
    ProgressEvent,
    QueuedEvent,
    RetryingEvent,
    TokenEvent,
    session_event_adapter,
)
from chat_contracts.history import (
    BudgetReply,
    StartAnswer,
    StartReply,
    TurnReply,
    history_request_adapter,
)
from chat_contracts.topology import LLM_REQUEST_KEY, MAX_DELIVERIES, Topology
from chat_contracts.work import LlmRequest
from chat_devtools.infra import delete_topology, unique_prefix
from chat_llm_worker.generations import Generations
from chat_llm_worker.handlers import register
from chat_llm_worker.link import WorkerLink
from chat_llm_worker.messages import BUSY_MESSAGE, RETRYING_MESSAGE
from chat_llm_worker.providers import (
    AnthropicProvider,
    Provider,
    ProviderRequest,
    ScriptedProvider,
    TokenCount,
)
from chat_llm_worker.settings import LlmWorkerSettings
from chat_llm_worker.worker import assemble
from chat_runtime.declare import declare_topology_at
from tests.support.fake_anthropic import (
    INPUT_TOKENS,
    SLOW_DELTA_SECONDS,
    FakeAnthropic,
    running_fake_anthropic,
)

# The scripted model at 50 deltas/s: its default answer (~230 deltas) takes ~4.5 s.
SLOW = {"scripted_ttft_ms": 20, "scripted_tokens_per_second": 50}
FAST = {"scripted_ttft_ms": 5, "scripted_tokens_per_second": 2000}


@dataclass
class FakeHistory:
    """Answers the worker's history questions (`StartAnswer`): turn claims as `claim` says;
    once claimed, no earlier turns and the budget allowed (each hold recorded in `holds`).
    `silent`: nothing is answered (history is down)."""

    claim: Callable[[StartAnswer], TurnReply] = lambda asked: TurnReply(status="claimed")
    silent: bool = False
    asked: list[Any] = field(default_factory=list)
    holds: list[StartAnswer] = field(default_factory=list)

    def answer(self, body: bytes) -> bytes | None:
        request = history_request_adapter.validate_json(body)
        self.asked.append(request)
        if self.silent:
            return None
        if not isinstance(request, StartAnswer):
            raise AssertionError(f"the worker asked history {request!r}")
        turn = self.claim(request)
        if turn.status != "claimed":
            return StartReply(turn=turn).model_dump_json().encode()
        self.holds.append(request)
        zero = Decimal(0)
        budget = BudgetReply(
            allowed=True, budget_usd=Decimal(100), spent_usd=zero, reserved_usd=zero
        )
        return StartReply(turn=turn, budget=budget).model_dump_json().encode()

    def questions(self, kind: type[Any]) -> list[Any]:
        return [asked for asked in self.asked if isinstance(asked, kind)]


@dataclass
class Harness:
    settings: LlmWorkerSettings
    topology: Topology
    channel: AbstractChannel
    history: FakeHistory
    generations: Generations
    link: WorkerLink
    events: asyncio.Queue[AnySessionEvent]
    stops: asyncio.Queue[StopRequest]
    seen: list[AnySessionEvent] = field(default_factory=list)

    async def request(self, text: str, user: UserRef | None = None) -> LlmRequest:
        request = llm_request(text, user)
        await self.publish_request(request)
        return request

    async def publish_request(self, request: LlmRequest) -> None:
        exchange = await self.channel.get_exchange(self.topology.work.name)
        await exchange.publish(
            aio_pika.Message(
                request.model_dump_json().encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT
            ),
            routing_key=LLM_REQUEST_KEY,
        )

    async def control(self, body: StopRequest | ReplayRequest, reply_to: str | None = None) -> None:
        exchange = await self.channel.get_exchange(self.topology.llm_control.name)
        await exchange.publish(
            aio_pika.Message(
                body.model_dump_json().encode(), reply_to=reply_to, correlation_id=uuid4().hex
            ),
            routing_key="",
        )

    async def replay(self, asked: ReplayRequest, timeout: float = 3.0) -> ReplayReply | None:
        """What a gateway gets back: the holder's reply, or None when nobody answers."""
        queue = await self.channel.declare_queue(exclusive=True, auto_delete=True)
        replies: asyncio.Queue[bytes] = asyncio.Queue()

        async def on_reply(message: AbstractIncomingMessage) -> None:
            await replies.put(message.body)

        await queue.consume(on_reply, no_ack=True)
        await self.control(asked, reply_to=queue.name)
        try:
            body = await asyncio.wait_for(replies.get(), timeout)
        except TimeoutError:
            return None
        finally:
            await queue.delete(if_unused=False, if_empty=False)
        return ReplayReply.model_validate_json(body)

    async def next_event(self, message_id: UUID, timeout: float = 10) -> AnySessionEvent:
        async with asyncio.timeout(timeout):
            while True:
                event = await self.events.get()
                self.seen.append(event)
                if getattr(event, "message_id", None) == message_id:
                    return event

    async def until_final(
        self, message_id: UUID, timeout: float = 20, *, progress: bool = False
    ) -> list[AnySessionEvent]:
        """Every event of the message (progress reports too if asked) until its final one."""
        events: list[AnySessionEvent] = []
        while True:
            event = await self.next_event(message_id, timeout)
            if isinstance(event, ProgressEvent) and not progress:
                continue
            events.append(event)
            if isinstance(event, CompleteEvent | ErrorEvent):
                return events

    async def tokens(self, message_id: UUID, count: int) -> list[TokenEvent]:
        tokens: list[TokenEvent] = []
        while len(tokens) < count:
            event = await self.next_event(message_id)
            if isinstance(event, TokenEvent):
                tokens.append(event)
        return tokens


def llm_request(text: str, user: UserRef | None = None) -> LlmRequest:
    user = user or UserRef(user_id=uuid4(), org_id=uuid4(), email="a@example.com", name="A")
    return LlmRequest(
        session_id=uuid4(),
        correlation_id=uuid4(),
        message_id=uuid4(),
        user_message_id=uuid4(),
        text=text,
        user=user,
        queued_at=time.time(),
    )


def stop_for(request: LlmRequest, **changes: Any) -> StopRequest:
    fields: dict[str, Any] = {
        "session_id": request.session_id,
        "message_id": request.message_id,
        "org_id": request.user.org_id,
        "user_id": request.user.user_id,
        "requested_at": time.time(),
        **changes,
    }
    return StopRequest(**fields)


def replay_for(request: LlmRequest, **changes: Any) -> ReplayRequest:
    fields: dict[str, Any] = {
        "session_id": request.session_id,
        "message_id": request.message_id,
        "org_id": request.user.org_id,
        "user_id": request.user.user_id,
        **changes,
    }
    return ReplayRequest(**fields)


@pytest.fixture
async def infra(amqp_url: str) -> AsyncIterator[tuple[str, AbstractChannel]]:
    prefix = unique_prefix()
    await declare_topology_at(amqp_url, Topology(prefix))
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        yield prefix, await connection.channel()
    await delete_topology(amqp_url, prefix)


async def _serve_history(channel: AbstractChannel, topology: Topology, history: FakeHistory) -> str:
    queue = await channel.get_queue(topology.history_rpc.name)

    async def on_question(message: AbstractIncomingMessage) -> None:
        reply = history.answer(message.body)
        if reply is not None and message.reply_to:
            await channel.default_exchange.publish(
                aio_pika.Message(reply, correlation_id=message.correlation_id),
                routing_key=message.reply_to,
            )

    return await queue.consume(on_question, no_ack=True)


async def _watch(
    channel: AbstractChannel, topology: Topology
) -> tuple[asyncio.Queue[AnySessionEvent], asyncio.Queue[StopRequest]]:
    events: asyncio.Queue[AnySessionEvent] = asyncio.Queue()
    stops: asyncio.Queue[StopRequest] = asyncio.Queue()
    events_queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await events_queue.bind(topology.events.name, routing_key="session.*.*")
    control_queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await control_queue.bind(topology.llm_control.name)

    async def on_event(message: AbstractIncomingMessage) -> None:
        await events.put(session_event_adapter.validate_json(message.body))

    async def on_control(message: AbstractIncomingMessage) -> None:
        control = worker_control_adapter.validate_json(message.body)
        if isinstance(control, StopRequest):
            await stops.put(control)

    await events_queue.consume(on_event, no_ack=True)
    await control_queue.consume(on_control, no_ack=True)
    return events, stops


WorkerFactory = Callable[..., Any]


@pytest.fixture
async def start_worker(
    amqp_url: str, infra: tuple[str, AbstractChannel]
) -> AsyncIterator[WorkerFactory]:
    """Start a worker (once per test) with settings `overrides`, a provider and a history
    stand-in; returns the harness."""
    prefix, channel = infra
    topology = Topology(prefix)
    started: list[tuple[RabbitBroker, WorkerLink]] = []

    async def start(
        history: FakeHistory | None = None,
        provider: Callable[[LlmWorkerSettings], Provider] = ScriptedProvider,
        **overrides: Any,
    ) -> Harness:
        settings = LlmWorkerSettings(
            **{"amqp_url": amqp_url, "broker_prefix": prefix, "llm_provider": "scripted"}
            | overrides
        )
        history = history or FakeHistory()
        await _serve_history(channel, topology, history)
        events, stops = await _watch(channel, topology)
        broker = RabbitBroker(amqp_url)
        worker = assemble(broker, settings, provider(settings))
        register(broker, settings, worker.answerer)
        link, generations = worker.link, worker.generations
        await link.start()
        await broker.start()
        started.append((broker, link))
        return Harness(settings, topology, channel, history, generations, link, events, stops)

    yield start
    for broker, link in started:
        await broker.stop()
        await link.stop()


# -- stop --------------------------------------------------------------------------------------


async def test_a_stop_ends_the_answer_with_its_partial_text_and_usage(
    start_worker: WorkerFactory,
) -> None:
    worker = await start_worker(**SLOW)
    request = await worker.request("tell me something long")
    tokens = await worker.tokens(request.message_id, 5)
    await worker.control(stop_for(request))
    events = await worker.until_final(request.message_id, timeout=2)
    complete = events[-1]
    assert isinstance(complete, CompleteEvent) and complete.status == "stopped"
    tokens += [e for e in events if isinstance(e, TokenEvent)]
    assert complete.text == "".join(t.text for t in tokens)
    assert complete.seq == tokens[-1].seq + 1
    assert complete.llm_call is not None and complete.llm_call.status == "stopped"
    assert complete.usage is not None
    assert complete.usage.output_tokens == sum(t.deltas for t in tokens)
    assert complete.usage.input_tokens > 0


async def test_a_stop_from_someone_else_is_ignored(start_worker: WorkerFactory) -> None:
    worker = await start_worker(**FAST)
    request = await worker.request("echo: " + "a few words " * 20)
    await worker.tokens(request.message_id, 1)
    await worker.control(stop_for(request, user_id=uuid4()))
    await worker.control(stop_for(request, session_id=uuid4()))
    complete = (await worker.until_final(request.message_id))[-1]
    assert isinstance(complete, CompleteEvent) and complete.status == "complete"


async def test_a_stop_that_overtakes_its_request_ends_it_when_taken(
    start_worker: WorkerFactory,
) -> None:
    worker = await start_worker(**SLOW)
    request = llm_request("stopped before it started")
    await worker.control(stop_for(request))
    async with asyncio.timeout(5):  # the stop reaches the worker first
        while not worker.generations.stop_waiting(request.message_id):
            await asyncio.sleep(0.01)
    await worker.publish_request(request)
    events = await worker.until_final(request.message_id)
    assert [type(e) for e in events] == [CompleteEvent]
    complete = events[0]
    assert isinstance(complete, CompleteEvent)
    assert (complete.status, complete.text, complete.seq) == ("stopped", "", 1)
    # The model was never asked: history was not even asked for the turn or a budget hold.
    assert worker.history.asked == []


# -- replay ------------------------------------------------------------------------------------


async def test_replay_sends_what_followed_the_asked_seq_and_then_the_whole_answer(
    start_worker: WorkerFactory,
) -> None:
    worker = await start_worker(**SLOW)
    request = await worker.request("tell me something long")
    tokens = await worker.tokens(request.message_id, 4)

    reply = await worker.replay(replay_for(request, after_seq=2))
    assert reply is not None and not reply.ended and reply.attempt == 1
    replayed = [e.seq for e in reply.events]
    assert replayed[:2] == [3, 4] and replayed == list(range(3, 3 + len(replayed)))
    assert [e.text for e in reply.events[:2]] == [t.text for t in tokens[2:4]]

    # Somebody else's client gets nothing, as does a message this worker never held.
    assert await worker.replay(replay_for(request, user_id=uuid4()), timeout=0.5) is None
    assert await worker.replay(replay_for(request, message_id=uuid4()), timeout=0.5) is None

    await worker.control(stop_for(request))
    events = await worker.until_final(request.message_id)
    whole = await worker.replay(replay_for(request, after_seq=0))
    assert whole is not None and whole.ended
    assert [e.seq for e in whole.events] == list(range(1, events[-1].seq + 1))
    assert whole.events[-1] == events[-1]


# -- attempts ----------------------------------------------------------------------------------


async def _deliver_and_drop(
    harness_channel: AbstractChannel, topology: Topology, times: int
) -> None:
    """Take the queued request and give it back `times` times, as a worker that dies would."""
    queue = await harness_channel.get_queue(topology.llm_requests.name)
    for _ in range(times):
        message = None
        for _ in range(50):
            message = await queue.get(no_ack=False, fail=False)
            if message is not None:
                break
            await asyncio.sleep(0.05)
        assert message is not None, "the request is not in the queue"
        await message.nack(requeue=True)


async def test_a_redelivered_request_is_retried_as_attempt_two_from_seq_one(
    infra: tuple[str, AbstractChannel], start_worker: WorkerFactory
) -> None:
    prefix, channel = infra
    topology = Topology(prefix)
    request = llm_request("echo: " + "retried words " * 10)
    exchange = await channel.get_exchange(topology.work.name)
    await exchange.publish(
        aio_pika.Message(request.model_dump_json().encode()), routing_key=LLM_REQUEST_KEY
    )
    await _deliver_and_drop(channel, topology, 1)

    worker = await start_worker(**FAST)
    events = await worker.until_final(request.message_id)
    retrying, first = events[0], events[1]
    assert isinstance(retrying, RetryingEvent)
    assert retrying.attempt == 2 and retrying.reason == RETRYING_MESSAGE
    assert isinstance(first, TokenEvent) and (first.seq, first.attempt) == (1, 2)
    streamed = events[1:]
    assert [e.seq for e in streamed] == list(range(1, len(streamed) + 1))
    assert {e.attempt for e in streamed if isinstance(e, TokenEvent | CompleteEvent)} == {2}

    # A gateway that saw attempt 1 up to seq 5 is sent the whole of attempt 2.
    reply = await worker.replay(replay_for(request, attempt=1, after_seq=5))
    assert reply is not None and reply.attempt == 2 and reply.ended
    assert [e.seq for e in reply.events] == [e.seq for e in streamed]


class BrokenProvider:
    """A provider whose every call fails with an unexpected error (a bug, not an API error)."""

    name = "broken"
    model = "scripted-offline-v1"

    def __init__(self, settings: LlmWorkerSettings) -> None:
        self.tokens = TokenCount()

    def stream(self, request: ProviderRequest) -> BrokenProvider:
        return self

    def __aiter__(self) -> BrokenProvider:
        return self

    async def __anext__(self) -> str:
        raise RuntimeError("the provider broke")


async def test_the_last_allowed_delivery_tells_the_user_it_failed(
    infra: tuple[str, AbstractChannel], start_worker: WorkerFactory
) -> None:
    prefix, channel = infra
    topology = Topology(prefix)
    request = llm_request("this keeps failing")
    exchange = await channel.get_exchange(topology.work.name)
    await exchange.publish(
        aio_pika.Message(request.model_dump_json().encode()), routing_key=LLM_REQUEST_KEY
    )
    # Five deliveries failed already; the worker takes the sixth, the last RabbitMQ allows.
    await _deliver_and_drop(channel, topology, MAX_DELIVERIES)

    worker = await start_worker(provider=BrokenProvider, **FAST)
    events = await worker.until_final(request.message_id)
    assert isinstance(events[0], RetryingEvent) and events[0].attempt == MAX_DELIVERIES + 1
    error = events[-1]
    assert isinstance(error, ErrorEvent)
    assert (error.code, error.attempt, error.seq) == ("failed", MAX_DELIVERIES + 1, 1)
    # ...and the request is set aside, not retried again.
    dead = await channel.get_queue(topology.dead_letter_queue.name)
    for _ in range(50):
        if (message := await dead.get(fail=False)) is not None:
            break
        await asyncio.sleep(0.05)
    assert message is not None
    assert LlmRequest.model_validate_json(message.body).message_id == request.message_id


# -- progress and lost connections -------------------------------------------------------------


async def test_a_streaming_call_reports_its_progress_under_its_final_call_id(
    start_worker: WorkerFactory,
) -> None:
    worker = await start_worker(progress_interval_seconds=0.3, **SLOW)
    request = await worker.request("tell me something long")
    progress: list[ProgressEvent] = []
    while len(progress) < 2:
        event = await worker.next_event(request.message_id)
        if isinstance(event, ProgressEvent):
            progress.append(event)
    assert [p.llm_call.status for p in progress] == ["streaming", "streaming"]
    assert progress[1].llm_call.usage.output_tokens > progress[0].llm_call.usage.output_tokens
    await worker.control(stop_for(request))
    complete = (await worker.until_final(request.message_id))[-1]
    assert isinstance(complete, CompleteEvent) and complete.llm_call is not None
    assert {p.llm_call.call_id for p in progress} == {complete.llm_call.call_id}


async def rabbitmqctl(*args: str) -> str:
    command = shutil.which("rabbitmqctl")
    if command is None:
        pytest.skip("rabbitmqctl is not installed here")
    process = await asyncio.create_subprocess_exec(
        command, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


async def connection_pid(connection_name: str) -> str:
    listed = await rabbitmqctl(
        "list_connections", "-q", "--no-table-headers", "pid", "client_properties"
    )
    pids = [line.split("\t")[0] for line in listed.splitlines() if connection_name in line]
    assert len(pids) == 1, listed
    return pids[0]


async def test_a_worker_that_loses_its_broker_link_gives_the_attempt_up_and_retries(
    start_worker: WorkerFactory,
) -> None:
    worker = await start_worker(scripted_ttft_ms=20, scripted_tokens_per_second=30)
    pid = await connection_pid(worker.link.connection_name)
    request = await worker.request("tell me something long")
    await worker.tokens(request.message_id, 3)
    # RabbitMQ drops the worker's link, as when it restarts or a network link breaks.
    await rabbitmqctl("close_connection", pid, "test: the connection is lost")
    events = await worker.until_final(request.message_id, timeout=30, progress=True)

    # The lost attempt's usage is recorded as interrupted...
    reports = [e for e in events if isinstance(e, ProgressEvent) and e.attempt == 1]
    assert [p.llm_call.status for p in reports][-1:] == ["interrupted"]
    assert {p.llm_call.status for p in reports[:-1]} <= {"streaming"}
    assert reports[-1].llm_call.usage.output_tokens >= 3
    # ...and the request, not acknowledged, comes back as attempt 2, streamed whole from seq 1.
    retrying = [e for e in events if isinstance(e, RetryingEvent)]
    assert [r.attempt for r in retrying] == [2]
    again = events[events.index(retrying[0]) + 1 :]
    streamed = [e for e in again if isinstance(e, TokenEvent | CompleteEvent)]
    assert [e.seq for e in streamed] == list(range(1, len(streamed) + 1))
    assert {e.attempt for e in streamed} == {2}
    complete = streamed[-1]
    assert isinstance(complete, CompleteEvent) and complete.status == "complete"
    assert complete.text == "".join(e.text for e in streamed if isinstance(e, TokenEvent))
    assert complete.text.startswith("This answer comes from the **offline scripted model**")


# -- busy policies -----------------------------------------------------------------------------


def busy_then_claimed(busy_times: int, holder: UUID) -> Callable[[StartAnswer], TurnReply]:
    claims = 0

    def claim(asked: StartAnswer) -> TurnReply:
        nonlocal claims
        claims += 1
        if claims <= busy_times:
            return TurnReply(status="busy", holder_message_id=holder)
        return TurnReply(status="claimed")

    return claim


async def test_queue_policy_waits_for_the_turn_then_answers(start_worker: WorkerFactory) -> None:
    holder = uuid4()
    history = FakeHistory(claim=busy_then_claimed(3, holder))
    worker = await start_worker(history, busy_policy="queue", turn_stale_seconds=42, **FAST)
    request = await worker.request("echo: my turn")
    events = await worker.until_final(request.message_id)
    assert isinstance(events[0], QueuedEvent) and events[0].behind_message_id == holder
    assert not any(isinstance(e, QueuedEvent) for e in events[1:])  # told once
    assert isinstance(events[-1], CompleteEvent) and events[-1].text == "my turn"
    claims = history.questions(StartAnswer)
    assert len(claims) == 4 and {c.stale_after_seconds for c in claims} == {42}
    assert not any(c.interrupt for c in claims)


async def test_a_queued_answer_can_be_stopped(start_worker: WorkerFactory) -> None:
    history = FakeHistory(claim=lambda asked: TurnReply(status="busy", holder_message_id=uuid4()))
    worker = await start_worker(history, busy_policy="queue", **FAST)
    request = await worker.request("echo: never my turn")
    assert isinstance(await worker.next_event(request.message_id), QueuedEvent)
    await worker.control(stop_for(request))
    events = await worker.until_final(request.message_id, timeout=2)
    assert [(type(e), getattr(e, "status", None)) for e in events] == [(CompleteEvent, "stopped")]


async def test_reject_policy_refuses_while_the_session_is_busy(
    start_worker: WorkerFactory,
) -> None:
    history = FakeHistory(claim=lambda asked: TurnReply(status="busy", holder_message_id=uuid4()))
    worker = await start_worker(history, busy_policy="reject", **FAST)
    request = await worker.request("echo: not now")
    events = await worker.until_final(request.message_id)
    assert len(events) == 1 and isinstance(events[0], ErrorEvent)
    assert (events[0].code, events[0].retryable, events[0].message) == ("busy", True, BUSY_MESSAGE)
    assert worker.history.holds == []


async def test_interrupt_policy_takes_the_turn_and_stops_the_holder(
    start_worker: WorkerFactory,
) -> None:
    holder = uuid4()
    history = FakeHistory(claim=lambda asked: TurnReply(status="claimed", holder_message_id=holder))
    worker = await start_worker(history, busy_policy="interrupt", **FAST)
    request = await worker.request("echo: me first")
    events = await worker.until_final(request.message_id)
    assert isinstance(events[-1], CompleteEvent) and events[-1].text == "me first"
    stop = await asyncio.wait_for(worker.stops.get(), 2)
    assert (stop.message_id, stop.session_id) == (holder, request.session_id)
    assert (stop.org_id, stop.user_id) == (request.user.org_id, request.user.user_id)
    assert all(c.interrupt for c in history.questions(StartAnswer))


async def test_interrupt_policy_stops_the_answer_in_progress_end_to_end(
    start_worker: WorkerFactory,
) -> None:
    """Two answers of one session on one worker: the second takes the turn, the first stops."""
    first_id: list[UUID] = []

    def claim(asked: StartAnswer) -> TurnReply:
        if not first_id:
            first_id.append(asked.message_id)
            return TurnReply(status="claimed")
        return TurnReply(status="claimed", holder_message_id=first_id[0])

    worker = await start_worker(FakeHistory(claim=claim), busy_policy="interrupt", **SLOW)
    first = await worker.request("tell me something long")
    await worker.tokens(first.message_id, 3)
    second = first.model_copy(update={"message_id": uuid4(), "correlation_id": uuid4()})
    second = second.model_copy(update={"text": "echo: interrupting"})
    await worker.publish_request(second)
    stopped = (await worker.until_final(first.message_id, timeout=5))[-1]
    assert isinstance(stopped, CompleteEvent) and stopped.status == "stopped"
    answered = (await worker.until_final(second.message_id))[-1]
    assert isinstance(answered, CompleteEvent) and answered.text == "interrupting"


# -- history outage ----------------------------------------------------------------------------


async def test_history_down_the_answer_goes_on_and_the_breaker_stops_asking(
    start_worker: WorkerFactory,
) -> None:
    history = FakeHistory(silent=True)
    worker = await start_worker(
        history, history_rpc_timeout_seconds=0.3, history_breaker_seconds=1.5, **FAST
    )
    started = time.monotonic()
    first = await worker.request("echo: without history")
    events = await worker.until_final(first.message_id)
    assert isinstance(events[-1], CompleteEvent) and events[-1].text == "without history"
    # One question timed out; the breaker answered the others without asking.
    assert len(history.asked) == 1
    assert time.monotonic() - started < 0.3 + 1.0

    second = await worker.request("echo: still without")
    assert isinstance((await worker.until_final(second.message_id))[-1], CompleteEvent)
    assert len(history.asked) == 1

    # After the pause one question goes through: history is back, and is asked everything.
    await asyncio.sleep(1.6)
    history.silent = False
    third = await worker.request("echo: history is back")
    assert isinstance((await worker.until_final(third.message_id))[-1], CompleteEvent)
    kinds = [type(asked) for asked in history.asked[1:]]
    assert kinds == [StartAnswer]


async def test_history_down_each_org_answers_within_its_outage_allowance(
    start_worker: WorkerFactory,
) -> None:
    # One claude-sonnet-4-6 answer of 1024 tokens holds ~$0.0155: the allowance covers two.
    worker = await start_worker(
        FakeHistory(silent=True),
        history_rpc_timeout_seconds=0.2,
        budget_outage_allowance_usd=Decimal("0.035"),
        llm_max_tokens=1024,
        model_prices={
            "scripted-offline-v1": {"input_per_mtok": "3", "output_per_mtok": "15"},
        },
        **FAST,
    )
    user = UserRef(user_id=uuid4(), org_id=uuid4(), email="a@example.com", name="A")
    finals = []
    for n in range(3):
        request = await worker.request(f"echo: answer {n}", user)
        finals.append((await worker.until_final(request.message_id))[-1])
    assert [type(f) for f in finals] == [CompleteEvent, CompleteEvent, ErrorEvent]
    refused = finals[2]
    assert isinstance(refused, ErrorEvent)
    assert refused.code == "unavailable" and refused.retryable
    # Another org has its own allowance.
    other = await worker.request("echo: another org")
    assert isinstance((await worker.until_final(other.message_id))[-1], CompleteEvent)


async def test_no_outage_allowance_refuses_tier_two_while_history_is_down(
    start_worker: WorkerFactory,
) -> None:
    worker = await start_worker(
        FakeHistory(silent=True),
        history_rpc_timeout_seconds=0.2,
        budget_outage_allowance_usd=Decimal(0),
        **FAST,
    )
    request = await worker.request("echo: refused")
    events = await worker.until_final(request.message_id)
    assert len(events) == 1 and isinstance(events[0], ErrorEvent)
    assert events[0].code == "unavailable"


# -- the Anthropic provider --------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropic]:
    with running_fake_anthropic() as server:
        yield server


async def test_a_stop_closes_the_model_stream_within_half_a_second(
    start_worker: WorkerFactory, fake: FakeAnthropic
) -> None:
    worker = await start_worker(
        provider=AnthropicProvider,
        llm_provider="anthropic",
        anthropic_api_key="test-key-not-a-real-one",
        anthropic_base_url=fake.url,
        anthropic_max_retries=0,
    )
    request = await worker.request("a long one please [slow]")
    tokens = await worker.tokens(request.message_id, 5)
    disconnects = len(fake.disconnects)
    asked = time.monotonic()
    await worker.control(stop_for(request))
    events = await worker.until_final(request.message_id, timeout=2)
    ended = time.monotonic()
    complete = events[-1]
    assert isinstance(complete, CompleteEvent) and complete.status == "stopped"
    assert ended - asked < 0.5
    # The server saw its client go away, within the half second too.
    for _ in range(20):
        if len(fake.disconnects) > disconnects:
            break
        await asyncio.sleep(SLOW_DELTA_SECONDS)
    assert len(fake.disconnects) == disconnects + 1
    assert fake.disconnects[-1] - asked < 0.5
    tokens += [e for e in events if isinstance(e, TokenEvent)]
    assert complete.text == "".join(t.text for t in tokens)
    assert complete.usage is not None and complete.llm_call is not None
    assert complete.llm_call.status == "stopped"
    assert complete.usage.input_tokens == INPUT_TOKENS
    assert complete.usage.output_tokens >= sum(t.deltas for t in tokens) > 0
    assert complete.usage.cost_usd > 0
