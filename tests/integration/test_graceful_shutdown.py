"""SIGTERM, as Kubernetes and `docker compose` send it: what a stopping service does with what
it holds. Real processes, real RabbitMQ and PostgreSQL.

- an LLM worker stopped mid-stream finishes the answer if it can within its grace period;
  otherwise the request goes back to the queue and another worker answers it: nothing is lost;
- a gateway stopped with sockets open tells each client to reconnect elsewhere (close code 1012)
  after sending what it had queued for it, and refuses nothing it had accepted.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import Iterator
from uuid import UUID

import aio_pika
import pytest
import websockets

from chat_contracts.base import UserRef
from chat_contracts.topology import Topology
from chat_devtools.client import ChatClient
from chat_devtools.seed import create_user, token_for
from chat_devtools.stack import Stack, StackFactory
from tests.support.db import wait_for_rows

WITHOUT_WORKER = ("gateway", "orchestrator", "tools", "history")
# ~155 deltas at 40/s: a four-second answer, long enough to stop a worker in the middle of it.
SLOW = {"SCRIPTED_TTFT_MS": "50", "SCRIPTED_TOKENS_PER_SECOND": "40"}
QUESTION = "tell me about graceful shutdown"
# The scripted model echoes what follows "echo:": ~80 deltas, a two-second answer.
SHORTER = "echo: " + "a shorter answer, " * 15


@pytest.fixture(scope="module")
def services(stack_factory: StackFactory) -> Stack:
    return stack_factory(services=WITHOUT_WORKER, **SLOW)


@pytest.fixture
def stack(services: Stack) -> Iterator[Stack]:
    """The services without a worker: each test starts (and stops) the workers it needs."""
    yield services
    services.stop("llm-worker", signal.SIGKILL)


@pytest.fixture
async def user(database_url: str) -> UserRef:
    return await create_user(database_url)


def start_worker(stack: Stack, grace_seconds: float) -> None:
    stack.start("llm-worker", {"SHUTDOWN_GRACE_SECONDS": str(grace_seconds)})
    stack.wait_ready(("llm-worker",))


def sigterm(stack: Stack, name: str) -> subprocess.Popen[bytes]:
    process = stack.processes.pop(name)
    process.send_signal(signal.SIGTERM)
    return process


async def stopped_cleanly(stack: Stack, name: str, process: subprocess.Popen[bytes]) -> bool:
    """The process ended by itself after its shutdown ran to the end.

    uvicorn re-raises the signal once it has shut down gracefully, so a clean stop exits with
    -SIGTERM (143 in a shell), like any program that honours SIGTERM; the log tells the rest.
    """
    deadline = asyncio.get_running_loop().time() + 30
    while process.poll() is None:
        assert asyncio.get_running_loop().time() < deadline, f"{name} did not stop"
        await asyncio.sleep(0.05)
    finished = f'"msg":"Finished server process [{process.pid}]"'
    return process.returncode in (0, -signal.SIGTERM) and finished in stack.logs(name)


async def queue_depth(amqp_url: str, name: str) -> int:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, passive=True)
        return queue.declaration_result.message_count or 0


async def wait_depth(amqp_url: str, name: str, expected: int, timeout: float = 10) -> int:
    """The queue's depth once it is `expected`, or whatever it is after `timeout`: messages
    reach a queue, and come back to it, a few milliseconds after the event that sends them."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (depth := await queue_depth(amqp_url, name)) != expected:
        if asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.05)
    return depth


async def first_token(client: ChatClient, reply_message_id: str) -> list[dict[str, object]]:
    frames = []
    while not frames or frames[-1]["type"] != "token":
        frame = await client.recv(timeout=10)
        if frame.get("message_id") == reply_message_id:
            frames.append(frame)
    return frames


async def assert_nothing_left(stack: Stack, amqp_url: str) -> None:
    topology = Topology(stack.env["BROKER_PREFIX"])
    assert await wait_depth(amqp_url, topology.llm_requests.name, 0) == 0
    assert await queue_depth(amqp_url, topology.dead_letter_queue.name) == 0


async def test_a_worker_stopped_mid_stream_finishes_the_answer_within_its_grace(
    stack: Stack, user: UserRef, amqp_url: str, database_url: str
) -> None:
    start_worker(stack, grace_seconds=20)
    client = await ChatClient.connect(stack.ws_url, token_for(user))
    await client.join()
    accepted = await client.send(QUESTION)
    reply_id = accepted["reply_message_id"]
    frames = await first_token(client, reply_id)

    worker = sigterm(stack, "llm-worker")
    frames += await client.answer(reply_id, timeout=30)

    tokens = [f for f in frames if f["type"] == "token"]
    complete = frames[-1]
    assert complete["type"] == "complete"
    # One uninterrupted stream: seq 1..n, then complete at n + 1, the text whole.
    assert [t["seq"] for t in tokens] == list(range(1, len(tokens) + 1))
    assert complete["seq"] == len(tokens) + 1
    assert complete["text"] == "".join(str(t["text"]) for t in tokens)
    assert await stopped_cleanly(stack, "llm-worker", worker)
    # No worker is left: had the request been handed back, it would be waiting in the queue.
    await assert_nothing_left(stack, amqp_url)
    rows = await wait_for_rows(
        database_url,
        "SELECT content, status FROM chat.messages WHERE id = :m AND status = 'complete'",
        m=UUID(reply_id),
    )
    assert rows == [{"content": complete["text"], "status": "complete"}]
    await client.close()


async def test_a_worker_stopped_past_its_grace_hands_the_request_back(
    stack: Stack, user: UserRef, amqp_url: str, database_url: str
) -> None:
    start_worker(stack, grace_seconds=1)
    client = await ChatClient.connect(stack.ws_url, token_for(user))
    await client.join()
    accepted = await client.send(QUESTION)
    reply_id = accepted["reply_message_id"]
    await first_token(client, reply_id)

    assert await stopped_cleanly(stack, "llm-worker", sigterm(stack, "llm-worker"))
    topology = Topology(stack.env["BROKER_PREFIX"])
    # The unfinished request is back in the queue, waiting for a worker.
    assert await wait_depth(amqp_url, topology.llm_requests.name, 1) == 1

    start_worker(stack, grace_seconds=20)
    frames = await client.answer(reply_id, timeout=30)
    complete = frames[-1]
    assert complete["type"] == "complete"
    # The new worker streams the answer from the start: its tokens restart at seq 1.
    restart = max(i for i, f in enumerate(frames) if f["type"] == "token" and f["seq"] == 1)
    tokens = [f for f in frames[restart:] if f["type"] == "token"]
    assert [t["seq"] for t in tokens] == list(range(1, len(tokens) + 1))
    assert complete["seq"] == len(tokens) + 1
    assert complete["text"] == "".join(str(t["text"]) for t in tokens)
    await assert_nothing_left(stack, amqp_url)
    rows = await wait_for_rows(
        database_url,
        "SELECT content, status, attempt FROM chat.messages WHERE id = :m AND status = 'complete'",
        m=UUID(reply_id),
    )
    # The answer on record is the second attempt's.
    assert rows == [{"content": complete["text"], "status": "complete", "attempt": 2}]
    # Both calls are on record: the first attempt's usage as interrupted (the stopping worker
    # reports it as it gives the request back), the second's as ok.
    calls = await wait_for_rows(
        database_url,
        "SELECT attempt, status, output_tokens FROM chat.llm_calls WHERE correlation_id = :c "
        "ORDER BY attempt",
        count=2,
        c=UUID(accepted["correlation_id"]),
    )
    assert [(c["attempt"], c["status"]) for c in calls] == [(1, "interrupted"), (2, "ok")]
    assert calls[0]["output_tokens"] > 0
    await client.close()


async def test_a_stopping_worker_takes_no_new_request(
    stack: Stack, user: UserRef, amqp_url: str
) -> None:
    """While it finishes what it holds, a stopping worker is sent nothing new: a request that
    arrives meanwhile stays in the queue for another worker instead of waiting for this one."""
    stack.start("llm-worker", {"SHUTDOWN_GRACE_SECONDS": "20", "LLM_CONCURRENCY": "2"})
    stack.wait_ready(("llm-worker",))
    long_chat = await ChatClient.connect(stack.ws_url, token_for(user))
    short_chat = await ChatClient.connect(stack.ws_url, token_for(user))
    late_chat = await ChatClient.connect(stack.ws_url, token_for(user))
    for chat in (long_chat, short_chat, late_chat):
        await chat.join()
    long_reply = (await long_chat.send(QUESTION))["reply_message_id"]
    short_reply = (await short_chat.send(SHORTER))["reply_message_id"]
    await first_token(long_chat, long_reply)
    await first_token(short_chat, short_reply)
    # Both of the worker's slots are busy: this one waits in the queue.
    late_reply = (await late_chat.send(QUESTION))["reply_message_id"]
    topology = Topology(stack.env["BROKER_PREFIX"])
    assert await wait_depth(amqp_url, topology.llm_requests.name, 1) == 1

    worker = sigterm(stack, "llm-worker")
    # The short answer ends and frees a slot while the long one is still streaming...
    assert (await short_chat.answer(short_reply))[-1]["type"] == "complete"
    await asyncio.sleep(0.5)
    assert worker.poll() is None
    # ...and yet the waiting request was not delivered to the stopping worker.
    assert await queue_depth(amqp_url, topology.llm_requests.name) == 1

    start_worker(stack, grace_seconds=20)
    late = await late_chat.answer(late_reply, timeout=30)
    assert late[-1]["type"] == "complete"
    assert [f["seq"] for f in late] == list(range(1, len(late) + 1))
    assert (await long_chat.answer(long_reply, timeout=30))[-1]["type"] == "complete"
    assert await stopped_cleanly(stack, "llm-worker", worker)
    for chat in (long_chat, short_chat, late_chat):
        await chat.close()


@pytest.fixture
def two_gateways(stack: Stack) -> Iterator[Stack]:
    """A second gateway replica, "gateway-b": the one the tests stop (so that the module's own
    gateway needs no restart)."""
    stack.start("gateway-b", service="gateway")
    stack.wait_ready(("gateway-b",))
    yield stack
    stack.stop("gateway-b")


def ws_url(stack: Stack, name: str) -> str:
    return f"ws://127.0.0.1:{stack.ports[name]}/ws"


async def frames_until_closed(client: ChatClient) -> tuple[list[dict[str, object]], int | None]:
    """The frames the server sends until it closes the socket, and its close code (None when
    the server sent no close frame: the TCP connection just broke)."""
    frames = []
    while True:
        try:
            frames.append(await client.recv(timeout=30))
        except websockets.ConnectionClosed as closed:
            return frames, closed.rcvd.code if closed.rcvd is not None else None


async def test_a_stopping_gateway_sends_what_it_holds_then_closes_with_1012(
    two_gateways: Stack, user: UserRef, database_url: str
) -> None:
    stack = two_gateways
    start_worker(stack, grace_seconds=20)
    client = await ChatClient.connect(ws_url(stack, "gateway-b"), token_for(user))
    joined = await client.join()
    accepted = await client.send(QUESTION)
    reply_id = accepted["reply_message_id"]
    await first_token(client, reply_id)

    gateway = sigterm(stack, "gateway-b")
    _frames, code = await frames_until_closed(client)
    assert code == 1012
    assert await stopped_cleanly(stack, "gateway-b", gateway)
    assert "closing 1 sockets" in stack.logs("gateway-b")
    seqs = [f["seq"] for f in client.frames if f.get("message_id") == reply_id]
    assert seqs == list(range(1, len(seqs) + 1)), "a frame queued for the socket was dropped"
    with pytest.raises(ConnectionRefusedError):  # nothing listens any more
        await ChatClient.connect(ws_url(stack, "gateway-b"), token_for(user))

    # The client reconnects to the other replica and rejoins: the answer is there, whole.
    again = await ChatClient.connect(ws_url(stack, "gateway"), token_for(user))
    rejoined = await again.join(joined["session_id"])
    assert rejoined["type"] == "joined"
    done = [m for m in rejoined["messages"] if m["message_id"] == reply_id]
    if not done or done[0]["status"] != "complete":  # still streaming: it goes on here
        assert (await again.answer(reply_id, timeout=30))[-1]["type"] == "complete"
    rows = await wait_for_rows(
        database_url,
        "SELECT status FROM chat.messages WHERE id = :m AND status = 'complete'",
        m=UUID(reply_id),
    )
    assert len(rows) == 1
    await again.close()


async def test_a_send_racing_the_gateway_stop_is_accepted_or_not_sent_at_all(
    two_gateways: Stack, user: UserRef, database_url: str
) -> None:
    """Every `send` either got `accepted` before the 1012, and was published, or was not
    published: the client resends exactly those that were not accepted."""
    stack = two_gateways
    client = await ChatClient.connect(ws_url(stack, "gateway-b"), token_for(user))
    joined = await client.join()
    session_id = UUID(joined["session_id"])
    for n in range(30):
        await client.frame({"type": "send", "text": "who am I?", "client_message_id": f"m{n}"})
    gateway = sigterm(stack, "gateway-b")
    frames, code = await frames_until_closed(client)
    assert code == 1012
    accepted = {f["message_id"] for f in frames if f["type"] == "accepted"}
    assert await stopped_cleanly(stack, "gateway-b", gateway)

    query = "SELECT id FROM chat.messages WHERE session_id = :s AND role = 'user'"
    rows = await wait_for_rows(database_url, query, count=len(accepted), s=session_id)
    await asyncio.sleep(1)  # anything published without an `accepted` would show up by now
    rows = await wait_for_rows(database_url, query, count=len(accepted), s=session_id)
    assert {str(r["id"]) for r in rows} == accepted
