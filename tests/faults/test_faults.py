"""Faults, each with concurrent sessions streaming through it (docs/faults.md).

Every test starts its own stack (two gateway replicas, two LLM workers unless said otherwise),
runs `INTENSITY.sessions` sessions that ask `echo:` questions whose answers are known, injects
its fault mid-stream, and records one line of the table the run prints at the end: tokens
generated vs delivered, lost, duplicated, out of order, time to recover, messages lost.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from uuid import uuid4

import aio_pika
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from chat_contracts.topology import LLM_REQUEST_KEY, Topology
from tests.faults.stack import INTENSITY, FaultStack
from tests.support.chaos import (
    ChaosNode,
    kill,
    pause,
    rabbitmq_tools_missing,
    resume,
    wait_all_ready,
)
from tests.support.db import fetch
from tests.support.faultload import (
    Answer,
    FaultReport,
    FaultSession,
    LoadConfig,
    close_sessions,
    missing_rows,
    start_sessions,
    until_mid_stream,
)

pytestmark = pytest.mark.timeout(300)

Tokens = Callable[[int], Awaitable[list[str]]]
Record = Callable[[FaultReport], None]
CONFIG = LoadConfig(answer_chars=INTENSITY.answer_chars, ping_s=1)


def assert_clean(report: FaultReport, *, allow_retryable_errors: bool = False) -> None:
    """The suite's common verdict: nothing stuck or lost, every finished turn intact."""
    detail = report.describe_broken()
    assert report.stuck == 0, f"{report.stuck} answers stuck:\n{detail}"
    assert report.lost == 0 and report.gaps == 0, f"lost tokens:\n{detail}"
    assert report.duplicated == 0, f"duplicated tokens:\n{detail}"
    assert report.out_of_order == 0, f"tokens out of order:\n{detail}"
    assert not report.broken, f"{len(report.broken)} answers broken:\n{detail}"
    assert report.persisted_missing == 0, f"{report.persisted_missing} messages not persisted"
    errors = [a for a in report.answers if a.outcome not in ("complete", "stopped")]
    if allow_retryable_errors:
        unclear = [
            a for a in errors if not (a.outcome or "").startswith("error:") or not a.retryable
        ]
        assert not unclear, [(a.reply_id, a.outcome) for a in unclear]
    else:
        assert not errors, [(a.reply_id, a.outcome) for a in errors]


async def begin(
    fault: FaultStack, tokens: Tokens, name: str, config: LoadConfig = CONFIG
) -> tuple[list[FaultSession], FaultReport]:
    """`INTENSITY.sessions` tabs joined (alternating replicas), and the fault's report."""
    sessions = await start_sessions(await tokens(INTENSITY.sessions), fault.ws_urls, config)
    return sessions, FaultReport(name, sessions=len(sessions))


async def finish(
    report: FaultReport, sessions: list[FaultSession], database_url: str, *, timeout: float = 30
) -> None:
    """Wait for every answer's outcome, close the tabs, check the database."""
    answers = [a for s in sessions for a in s.sent]
    await asyncio.gather(*(s.wait(a) for s in sessions for a in s.sent))
    await close_sessions(sessions)
    report.answers = answers
    report.persisted_missing = await missing_rows(database_url, answers, timeout=timeout)


# -- (a) reconnect mid-stream to the other replica -----------------------------------------


async def test_a_client_that_reconnects_mid_stream_to_the_other_replica_misses_nothing(
    stack: FaultStack, tokens: Tokens, database_url: str, record: Record
) -> None:
    fault = stack
    sessions, report = await begin(fault, tokens, "a reconnect to other replica")
    first = [s.replica for s in sessions]

    async def turn(session: FaultSession, drop_after: int) -> None:
        answer = await session.send()
        if await session.wait_tokens(answer, drop_after):
            answer.fault_at = time.time()
            await session.drop()
        await session.wait(answer)

    # Two turns each, dropped at different points of the answer.
    await asyncio.gather(*(turn(s, 15 + (7 * s.index) % 120) for s in sessions))
    await asyncio.gather(*(turn(s, 60) for s in sessions))
    await finish(report, sessions, database_url)
    record(report)

    assert all(s.reconnects >= 2 for s in sessions), [s.reconnects for s in sessions]
    # Each drop rejoined on the other replica (a refused join moves on to the next one again).
    assert all(
        s.joined_replicas[0] == first[s.index] and set(s.joined_replicas) == {0, 1}
        for s in sessions
    ), [s.joined_replicas for s in sessions]
    assert_clean(report)


async def test_a_gateway_replica_killed_mid_stream_loses_its_clients_nothing(
    stack: FaultStack, tokens: Tokens, database_url: str, record: Record
) -> None:
    fault = stack
    sessions, report = await begin(fault, tokens, "a gateway replica SIGKILLed")
    answers = await asyncio.gather(*(s.send() for s in sessions))
    await until_mid_stream(sessions, deltas=20, fraction=0.5)
    report.fault_at = time.time()
    on_killed = [a for s, a in zip(sessions, answers, strict=True) if s.replica == 0]
    for answer in on_killed:
        answer.fault_at = report.fault_at
    kill(fault.stack, fault.gateways[0])
    await finish(report, sessions, database_url)
    record(report)

    assert on_killed and all(a.fault_at for a in on_killed)
    assert sum(s.reconnects for s in sessions) >= len(on_killed)
    assert_clean(report)


# -- (b) two tabs ----------------------------------------------------------------------------


async def test_two_tabs_on_one_session_both_get_the_whole_stream(
    stack: FaultStack, tokens: Tokens, database_url: str, record: Record
) -> None:
    fault = stack
    user_tokens = await tokens(INTENSITY.sessions)
    first = await start_sessions(user_tokens, fault.ws_urls, CONFIG)
    second = [
        FaultSession(s.index, s.token, fault.ws_urls, CONFIG, session_id=s.session_id, observe=True)
        for s in first
    ]
    for tab in second:
        tab.replica = (tab.index + 1) % len(fault.ws_urls)  # the other replica
    await asyncio.gather(*(tab.start() for tab in second))
    report = FaultReport("b two tabs, one session", sessions=len(first))

    await asyncio.gather(*(s.converse(2) for s in first))
    sent = [a for s in first for a in s.sent]
    # The second tab's copy of each answer.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all(
        a.reply_id in tab.answers and tab.answers[a.reply_id].outcome
        for s, tab in zip(first, second, strict=True)
        for a in s.sent
    ):
        await asyncio.sleep(0.05)
    copies: list[Answer] = []
    for s, tab in zip(first, second, strict=True):
        for a in s.sent:
            copy = tab.answers.get(a.reply_id or "")
            if copy is None:
                copy = Answer(expected=a.expected, client_message_id="", sent_at=a.sent_at)
                copy.reply_id = a.reply_id
                copy.end("stuck", time.time())
            copy.expected = a.expected
            copies.append(copy)
    await close_sessions(second)
    await finish(report, first, database_url)
    report.answers = sent + copies
    record(report)

    assert len(copies) == len(sent)
    assert_clean(report)
    assert [c.final_text for c in copies] == [a.final_text for a in sent]


# -- (c) stop --------------------------------------------------------------------------------


async def test_stop_mid_stream_ends_the_answer_within_500_ms_and_persists_it_stopped(
    stack: FaultStack, tokens: Tokens, database_url: str, record: Record
) -> None:
    fault = stack
    sessions, report = await begin(fault, tokens, "c stop mid-stream")

    async def stop_one(session: FaultSession) -> Answer:
        answer = await session.send()
        if await session.wait_tokens(answer, 20 + 3 * session.index):
            await session.stop(answer)
        return await session.wait(answer)

    answers = await asyncio.gather(*(stop_one(s) for s in sessions))
    await finish(report, sessions, database_url)
    latencies = [
        a.ended_at - a.stop_sent_at for a in answers if a.ended_at and a.stop_sent_at is not None
    ]
    if latencies:
        report.recover_s = max(latencies)
        report.notes.append(
            f"stop → complete(stopped): median {statistics.median(latencies) * 1000:.0f} ms, "
            f"max {max(latencies) * 1000:.0f} ms"
        )
    rows = await fetch(
        database_url,
        "SELECT m.id::text AS id, m.status, m.usage, c.status AS call_status, "
        "c.output_tokens FROM chat.messages m LEFT JOIN chat.llm_calls c ON c.message_id = m.id "
        "WHERE m.id::text = ANY(:ids)",
        ids=[a.reply_id for a in answers],
    )
    record(report)

    assert_clean(report)
    assert [a.outcome for a in answers] == ["stopped"] * len(answers)
    assert max(latencies) <= 0.5, latencies
    by_id = {row["id"]: row for row in rows}
    for answer in answers:
        row = by_id.get(answer.reply_id or "")
        assert row is not None, f"no row for {answer.reply_id}"
        assert row["status"] == "stopped", row
        assert row["usage"] is not None and row["call_status"] == "stopped", row
        # What the worker was charged for covers at least what the client received.
        assert row["output_tokens"] >= answer.delivered_deltas() > 0, row


# -- (d) busy: queue -------------------------------------------------------------------------


async def test_a_message_sent_while_an_answer_streams_waits_then_is_answered(
    stack: FaultStack, tokens: Tokens, database_url: str, record: Record
) -> None:
    fault = stack
    sessions, report = await begin(fault, tokens, "d busy policy: queue")

    async def two(session: FaultSession) -> tuple[Answer, Answer]:
        first = await session.send()
        await session.wait_tokens(first, 10)
        second = await session.send()
        return await session.wait(first), await session.wait(second)

    pairs = await asyncio.gather(*(two(s) for s in sessions))
    await finish(report, sessions, database_url)
    record(report)

    assert_clean(report)
    for first, second in pairs:
        order = (first.ended_at, second.first_token_at)
        assert second.queued, (
            f"no `queued` for {second.reply_id} (first ended, second began: {order})"
        )
        assert first.ended_at is not None and second.first_token_at is not None
        assert second.first_token_at >= first.ended_at, "the second answer did not wait"


# -- (e) broker restart ----------------------------------------------------------------------


async def test_a_broker_restarted_mid_stream_loses_no_message_and_leaves_nothing_stuck(
    stack: FaultStack,
    suite_broker: ChaosNode | None,
    tokens: Tokens,
    database_url: str,
    record: Record,
) -> None:
    if suite_broker is None:
        pytest.skip(f"no RabbitMQ node of the suite's own: {rabbitmq_tools_missing()}")
    fault = stack
    config = LoadConfig(answer_chars=INTENSITY.answer_chars, answer_deadline_s=60, ping_s=1)
    sessions, report = await begin(
        fault, tokens, f"e broker restarted {INTENSITY.broker_outage_s:.0f}s", config
    )
    for session in sessions:
        await session.send()
    await until_mid_stream(sessions, deltas=20, fraction=0.5)
    report.fault_at = time.time()
    await asyncio.to_thread(suite_broker.stop_app)
    await asyncio.sleep(INTENSITY.broker_outage_s)
    await asyncio.to_thread(suite_broker.start_app)
    report.fault_end = time.time()
    ready_s = await wait_all_ready(fault.stack, timeout=90)
    report.notes.append(f"every service ready (readyz 200) {ready_s:.1f}s after the broker")
    # In-flight answers settle; then one more turn each proves every consumer is back.
    await asyncio.gather(*(s.wait(a) for s in sessions for a in s.sent))
    await asyncio.gather(*(s.ask() for s in sessions))
    await finish(report, sessions, database_url, timeout=60)
    record(report)

    assert_clean(report, allow_retryable_errors=True)
    after = [s.sent[-1] for s in sessions]
    assert [a.outcome for a in after] == ["complete"] * len(after)


# -- (f) an LLM worker killed ----------------------------------------------------------------


async def test_a_worker_killed_mid_stream_has_its_turns_retried_on_the_other(
    stack: FaultStack, tokens: Tokens, database_url: str, record: Record
) -> None:
    fault = stack
    sessions, report = await begin(fault, tokens, "f llm worker SIGKILLed")
    answers = await asyncio.gather(*(s.send() for s in sessions))
    # Past the first progress report (every second), so the killed call has usage to record.
    await until_mid_stream(sessions, deltas=60, fraction=0.5)
    report.fault_at = time.time()
    kill(fault.stack, fault.workers[0])
    await finish(report, sessions, database_url)
    retried = [a for a in answers if a.retrying]
    # Until the client is told (`retrying`): tokens the killed worker published just before
    # may still arrive after the kill, so the first event after it proves nothing.
    waits = [a.retrying_at[0] - (report.fault_at or 0) for a in retried]
    report.recover_s = max(waits) if waits else None
    calls = await fetch(
        database_url,
        "SELECT message_id::text AS id, status, output_tokens FROM chat.llm_calls "
        "WHERE message_id::text = ANY(:ids)",
        ids=[a.reply_id for a in retried],
    )
    statuses: dict[str, int] = {}
    for call in calls:
        statuses[call["status"]] = statuses.get(call["status"], 0) + 1
    report.notes.append(f"{len(retried)} answers retried; llm_calls of them: {statuses}")
    record(report)

    assert retried, "no answer was on the killed worker (or none was told it is retried)"
    assert all(a.attempt >= 2 and a.outcome == "complete" for a in retried)
    assert max(waits) < 5, waits
    assert_clean(report)
    assert {c["id"] for c in calls if c["status"] == "ok"} == {a.reply_id for a in retried}
    assert statuses.get("interrupted", 0) >= 1, statuses


# -- (g) history down ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "outage_s",
    [
        pytest.param(8.0, id="8s"),
        pytest.param(30.0, id="30s", marks=pytest.mark.chaos_full),
    ],
)
async def test_chat_goes_on_while_history_is_down_and_everything_is_persisted_after(
    stack: FaultStack,
    tokens: Tokens,
    database_url: str,
    record: Record,
    outage_s: float,
) -> None:
    fault = stack
    config = LoadConfig(answer_chars=200, answer_deadline_s=outage_s + 30, ping_s=1)
    sessions, report = await begin(fault, tokens, f"g history down {outage_s:.0f}s", config)
    await asyncio.gather(*(s.ask() for s in sessions))  # before: a context to skip later

    report.fault_at = time.time()
    pause(fault.stack, "history")
    during: list[Answer] = []

    async def chat(session: FaultSession) -> None:
        while time.time() < (report.fault_at or 0) + outage_s - 1:
            during.append(await session.ask())
            await asyncio.sleep(1)  # a person reads the answer

    try:
        await asyncio.gather(*(chat(s) for s in sessions))
    finally:
        remaining = (report.fault_at or 0) + outage_s - time.time()
        await asyncio.sleep(max(0, remaining))
        resume(fault.stack, "history")
    report.fault_end = time.time()
    await finish(report, sessions, database_url, timeout=60 + 2 * outage_s)
    report.recover_s = time.time() - report.fault_end
    report.notes.append(
        f"{len(during)} answers while history was down; all persisted "
        f"{report.recover_s:.1f}s after it was back"
        if not report.persisted_missing
        else f"{report.persisted_missing} messages not persisted {report.recover_s:.0f}s after"
    )
    record(report)

    assert during and all(a.outcome == "complete" for a in during), {a.outcome for a in during}
    assert_clean(report)


# -- (h) poison ------------------------------------------------------------------------------


async def test_a_poison_request_is_dead_lettered_and_other_sessions_still_flow(
    stack: FaultStack, tokens: Tokens, database_url: str, record: Record
) -> None:
    fault = stack
    sessions, report = await begin(fault, tokens, "h poison llm.request")
    topology = Topology(fault.prefix)
    poison = [b"not json at all", json.dumps({"type": "llm_request", "v": 1}).encode()]
    marker = uuid4().hex
    poison = [body + marker.encode() if body.startswith(b"not") else body for body in poison]

    conversing = asyncio.gather(*(s.converse(2) for s in sessions))
    await until_mid_stream(sessions, deltas=10, fraction=0.5)
    published = time.time()
    connection = await aio_pika.connect(fault.amqp_url)
    async with connection:
        channel = await connection.channel()
        work = await channel.get_exchange(topology.work.name)
        for body in poison:
            await work.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=LLM_REQUEST_KEY,
            )
        dead = await channel.get_queue(topology.dead_letter_queue.name)
        found: list[bytes] = []
        deadline = time.monotonic() + 20
        while len(found) < len(poison) and time.monotonic() < deadline:
            message = await dead.get(fail=False)
            if message is None:
                await asyncio.sleep(0.2)
                continue
            await message.ack()
            if message.body in poison:
                found.append(message.body)
        # Here "recovery": how long the poison took to be set aside.
        report.recover_s = time.time() - published
        await conversing  # the other sessions' answers went on meanwhile
        requests = await channel.declare_queue(topology.llm_requests.name, passive=True)
        left = requests.declaration_result.message_count
    await finish(report, sessions, database_url)
    report.notes.append(f"{len(found)}/{len(poison)} poison requests in the dead-letter queue")
    record(report)

    assert sorted(found) == sorted(poison)
    assert left == 0, f"{left} requests left in the queue"
    assert_clean(report)


# -- (i) heartbeats --------------------------------------------------------------------------


async def test_heartbeats_reach_clients_and_a_silent_client_is_closed_4408(
    stack: FaultStack, tokens: Tokens, database_url: str, record: Record
) -> None:
    fault = stack
    user_tokens = await tokens(INTENSITY.sessions + 1)
    sessions = await start_sessions(user_tokens[1:], fault.ws_urls, CONFIG)
    report = FaultReport("i heartbeats (1s; silence 3s)", sessions=len(sessions))

    silent = await websockets.connect(
        fault.ws_urls[0],
        additional_headers={"Authorization": f"Bearer {user_tokens[0]}"},
        ping_interval=None,  # not even WebSocket pings: a half-open connection says nothing
    )
    await silent.send('{"type":"join"}')
    opened = time.time()
    silent_frames: list[str] = []
    closed: tuple[int | None, float] | None = None

    async def listen() -> None:
        nonlocal closed
        try:
            while True:
                silent_frames.append(json.loads(await silent.recv())["type"])
        except ConnectionClosed as exc:
            closed = (exc.rcvd.code if exc.rcvd else None, time.time() - opened)

    listening = asyncio.create_task(listen())
    # Two answers each (~10 s): the tabs that ping outlive the silence limit several times.
    await asyncio.gather(*(s.converse(2) for s in sessions))
    await asyncio.wait_for(listening, 15)
    assert closed is not None
    code, closed_after = closed
    report.notes.append(
        f"silent socket closed {code} after {closed_after:.1f}s; "
        f"heartbeats per tab: min {min(s.heartbeats for s in sessions)}"
    )
    await finish(report, sessions, database_url)
    record(report)

    assert code == 4408, (code, silent_frames)
    assert "heartbeat" in silent_frames
    # Silent for 3 s, checked at each 1 s heartbeat (plus slack for a loaded box).
    assert 3 <= closed_after < 3 + 1 + 1.5, closed_after
    assert all(s.heartbeats >= 5 for s in sessions), [s.heartbeats for s in sessions]
    assert all(s.reconnects == 0 for s in sessions), [s.close_codes for s in sessions]
    assert_clean(report)
