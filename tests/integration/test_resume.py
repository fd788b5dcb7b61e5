"""Streams that survive, at the gateway (docs/decisions/0006): real RabbitMQ, PostgreSQL and
history, two gateway replicas as processes (no sticky sessions), and a stand-in LLM worker
(tests/support/fake_worker.py) that streams events and answers replay requests.

- a client that rejoins, on the other replica, with `after` gets exactly what it missed: no gap,
  no repeat, in order, also for events that came both replayed and live during the join;
- every socket of a session gets the live stream;
- an answer that ended meanwhile comes whole (`resync` with the message); one no worker can
  replay is `resync` without; one that started over is `retrying`, then its new attempt;
- `stop` reaches the workers with the socket's own identity, and only from a joined socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import pytest

from chat_contracts.base import UserRef
from chat_devtools.client import ChatClient, Frame
from chat_devtools.seed import create_user, token_for
from chat_devtools.stack import Stack, StackFactory
from tests.support.db import wait_for_rows
from tests.support.fake_worker import Answer, FakeWorker

REPLAY_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def stack(stack_factory: StackFactory) -> Stack:
    stack = stack_factory(
        services=("history", "gateway"), REPLAY_TIMEOUT_SECONDS=str(REPLAY_TIMEOUT)
    )
    stack.start("gateway2", service="gateway")
    stack.wait_ready(("gateway2",))
    return stack


@pytest.fixture
async def worker(stack: Stack, amqp_url: str) -> AsyncIterator[FakeWorker]:
    worker = FakeWorker(amqp_url, stack.env["BROKER_PREFIX"])
    await worker.start()
    yield worker
    await worker.stop()


@pytest.fixture
async def user(database_url: str) -> UserRef:
    return await create_user(database_url)


async def connect(stack: Stack, user: UserRef, replica: str = "gateway") -> ChatClient:
    return await ChatClient.connect(f"ws://127.0.0.1:{stack.ports[replica]}/ws", token_for(user))


async def pending_answer(
    client: ChatClient, worker: FakeWorker, user: UserRef, database_url: str
) -> Answer:
    """A new session with a user message whose answer history shows streaming."""
    joined = await client.join()
    accepted = await client.send("tell me a long story")
    assert accepted["type"] == "accepted", accepted
    answer = Answer(
        session_id=UUID(joined["session_id"]),
        message_id=UUID(accepted["reply_message_id"]),
        user=user,
    )
    await worker.route(answer, UUID(accepted["message_id"]))
    await history_shows(database_url, answer, "pending")
    return answer


async def history_shows(database_url: str, answer: Answer, status: str) -> None:
    await wait_for_rows(
        database_url,
        "SELECT 1 FROM chat.messages WHERE id = :m AND status = :s",
        m=answer.message_id,
        s=status,
    )


async def orphaned_answer(
    stack: Stack, worker: FakeWorker, user: UserRef, database_url: str
) -> Answer:
    """An answer streaming with seq 1-2 shown by a tab since closed; no worker replays it."""
    first = await connect(stack, user)
    answer = await pending_answer(first, worker, user, database_url)
    await worker.stream(answer, 1, 2)
    await first.close()
    del worker.answers[answer.message_id]
    return answer


async def rejoin(client: ChatClient, answer: Answer, seq: int, attempt: int = 1) -> Frame:
    after = {"message_id": str(answer.message_id), "seq": seq, "attempt": attempt}
    await client.frame({"type": "join", "session_id": str(answer.session_id), "after": after})
    joined = await client.recv_type("joined", "error")
    assert joined["type"] == "joined", joined
    assert client.frames[0] is joined, "nothing may come before `joined`"
    return joined


async def next_frames(client: ChatClient, count: int) -> list[Frame]:
    return [await client.recv() for _ in range(count)]


async def nothing_more(client: ChatClient) -> None:
    """No frame is waiting: a ping's pong is the next thing the socket receives."""
    await client.frame({"type": "ping"})
    assert (await client.recv())["type"] == "pong"


def positions(frames: list[Frame]) -> list[tuple[str, int, int]]:
    return [(f["type"], f.get("attempt", 0), f.get("seq", 0)) for f in frames]


async def test_a_client_rejoining_on_the_other_replica_gets_exactly_what_it_missed(
    stack: Stack, worker: FakeWorker, user: UserRef, database_url: str
) -> None:
    first = await connect(stack, user, "gateway")
    answer = await pending_answer(first, worker, user, database_url)
    await worker.stream(answer, 1, 2, 3)
    assert [(await first.recv_type("token"))["seq"] for _ in range(3)] == [1, 2, 3]
    await first.close()  # the tab is refreshed with tokens 1-3 shown
    await worker.stream(answer, 4, 5, 6)  # nobody is connected

    async def live_during_the_join(_request: Any) -> None:
        await worker.stream(answer, 7)  # reaches the joining socket live and in the replay

    worker.before_reply = live_during_the_join
    second = await connect(stack, user, "gateway2")
    joined = await rejoin(second, answer, seq=3)
    assert {m["message_id"]: m["status"] for m in joined["messages"]}[
        str(answer.message_id)
    ] == "pending"
    worker.before_reply = None
    await worker.stream(answer, 8)
    complete = await worker.finish(answer)
    frames = await second.answer(str(answer.message_id))
    assert positions(frames) == [("token", 1, seq) for seq in range(4, 9)] + [("complete", 1, 9)]
    shown = "t1.1 t1.2 t1.3 " + "".join(f["text"] for f in frames[:-1])
    assert shown == complete.text == frames[-1]["text"]
    assert frames[-1]["status"] == "complete"
    await nothing_more(second)
    await second.close()


async def test_every_socket_of_a_session_gets_the_live_stream_on_either_replica(
    stack: Stack, worker: FakeWorker, user: UserRef, database_url: str
) -> None:
    first = await connect(stack, user, "gateway")
    answer = await pending_answer(first, worker, user, database_url)
    same_replica = await connect(stack, user, "gateway")
    other_replica = await connect(stack, user, "gateway2")
    for client in (same_replica, other_replica):
        await client.join(str(answer.session_id))
    await worker.stream(answer, 1, 2)
    await worker.finish(answer)
    for client in (first, same_replica, other_replica):
        frames = await client.answer(str(answer.message_id))
        assert positions(frames) == [("token", 1, 1), ("token", 1, 2), ("complete", 1, 3)]
        await client.close()


async def test_an_answer_that_ended_meanwhile_is_resynced_whole_from_history(
    stack: Stack, worker: FakeWorker, user: UserRef, database_url: str
) -> None:
    first = await connect(stack, user)
    answer = await pending_answer(first, worker, user, database_url)
    await first.close()
    await worker.stream(answer, 1, 2, 3)
    complete = await worker.finish(answer)
    await history_shows(database_url, answer, "complete")
    client = await connect(stack, user, "gateway2")
    await rejoin(client, answer, seq=2)
    resync = await client.recv()
    assert resync["type"] == "resync" and resync["reason"] == "ended"
    assert resync["message_id"] == str(answer.message_id)
    assert resync["message"]["text"] == complete.text
    assert resync["message"]["status"] == "complete"
    await nothing_more(client)
    await client.close()


async def test_a_streaming_answer_no_worker_can_replay_is_resynced_without_a_message(
    stack: Stack, worker: FakeWorker, user: UserRef, database_url: str
) -> None:
    answer = await orphaned_answer(stack, worker, user, database_url)  # its worker died

    client = await connect(stack, user, "gateway2")
    started = asyncio.get_running_loop().time()
    await rejoin(client, answer, seq=2)
    waited = asyncio.get_running_loop().time() - started
    assert REPLAY_TIMEOUT <= waited < REPLAY_TIMEOUT + 3
    resync = await client.recv()
    assert resync == {
        "type": "resync",
        "message_id": str(answer.message_id),
        "reason": "replay_unavailable",
        "message": None,
    }
    await nothing_more(client)

    # A client that has nothing of it has nothing to discard: it just waits for what comes.
    fresh = await connect(stack, user)
    await fresh.join(str(answer.session_id))
    await nothing_more(fresh)
    for socket in (client, fresh):
        await socket.close()


async def test_an_answer_that_ended_during_the_join_without_a_replayer_is_whole_in_joined(
    stack: Stack, worker: FakeWorker, user: UserRef, database_url: str
) -> None:
    answer = await orphaned_answer(stack, worker, user, database_url)  # or a Tier-1 answer

    async def end_it_meanwhile(request: Any) -> None:
        # History still showed it streaming when the gateway read it; it ends now.
        if request.message_id == answer.message_id:
            await worker.finish(answer)
            await history_shows(database_url, answer, "complete")

    worker.on_request = end_it_meanwhile
    client = await connect(stack, user, "gateway2")
    joined = await rejoin(client, answer, seq=2)
    message = {m["message_id"]: m for m in joined["messages"]}[str(answer.message_id)]
    assert (message["status"], message["text"]) == ("complete", "t1.1 t1.2 ")
    resync = await client.recv()
    assert (resync["type"], resync["reason"]) == ("resync", "ended")
    assert resync["message"]["text"] == "t1.1 t1.2 "
    await nothing_more(client)  # the live `complete`, held during the join, is not sent again
    await client.close()


async def test_an_answer_that_started_over_sends_retrying_then_the_new_attempt(
    stack: Stack, worker: FakeWorker, user: UserRef, database_url: str
) -> None:
    first = await connect(stack, user)
    answer = await pending_answer(first, worker, user, database_url)
    await worker.stream(answer, 1, 2, 3, 4)
    await first.close()
    await worker.retry(answer)  # attempt 2 from seq 1, on another worker
    await worker.stream(answer, 1, 2)

    client = await connect(stack, user, "gateway2")
    await rejoin(client, answer, seq=4, attempt=1)
    retrying = await client.recv()
    assert retrying["type"] == "retrying" and retrying["attempt"] == 2
    assert "generated again" in retrying["message"]
    await worker.stream(answer, 3)
    await worker.finish(answer)
    frames = await client.answer(str(answer.message_id))
    assert positions(frames) == [
        ("token", 2, 1),
        ("token", 2, 2),
        ("token", 2, 3),
        ("complete", 2, 4),
    ]
    assert frames[-1]["text"] == "t2.1 t2.2 t2.3 "
    await client.close()


async def test_stop_reaches_the_workers_with_the_sockets_own_identity(
    stack: Stack, worker: FakeWorker, user: UserRef, database_url: str
) -> None:
    client = await connect(stack, user)
    answer = await pending_answer(client, worker, user, database_url)
    await client.frame({"type": "stop", "message_id": str(answer.message_id)})
    stop = await asyncio.wait_for(worker.stops.get(), 10)
    assert (stop.session_id, stop.message_id, stop.org_id, stop.user_id) == (
        answer.session_id,
        answer.message_id,
        user.org_id,
        user.user_id,
    )
    await nothing_more(client)  # success is answered by the answer's own `complete`

    await client.frame({"type": "stop"})
    error = await client.recv()
    assert error["type"] == "error" and error["code"] == "bad_request"
    assert "message_id" in error["message"]

    unjoined = await connect(stack, user, "gateway2")
    await unjoined.frame({"type": "stop", "message_id": str(answer.message_id)})
    error = await unjoined.recv()
    assert error["type"] == "error" and error["code"] == "not_joined"
    for socket in (client, unjoined):
        await socket.close()


async def test_another_user_can_neither_stop_nor_replay_an_answer_that_is_not_theirs(
    stack: Stack, worker: FakeWorker, user: UserRef, database_url: str
) -> None:
    owner = await connect(stack, user)
    answer = await pending_answer(owner, worker, user, database_url)
    await worker.stream(answer, 1, 2)
    intruder_user = await create_user(database_url)
    intruder = await connect(stack, intruder_user, "gateway2")

    await intruder.frame({"type": "join", "session_id": str(answer.session_id)})
    error = await intruder.recv()
    assert error["type"] == "error" and error["code"] == "forbidden"

    # Joined to a session of its own, it names the other user's answer: the workers are told
    # who asks (their own session and identity), which the answer's worker refuses.
    own = await intruder.join()
    await intruder.frame({"type": "stop", "message_id": str(answer.message_id)})
    stop = await asyncio.wait_for(worker.stops.get(), 10)
    assert stop.session_id == UUID(own["session_id"]) != answer.session_id
    assert (stop.org_id, stop.user_id) == (intruder_user.org_id, intruder_user.user_id)

    after = {"message_id": str(answer.message_id), "seq": 1}
    intruder.frames.clear()
    await intruder.frame({"type": "join", "session_id": own["session_id"], "after": after})
    assert (await intruder.recv())["type"] == "joined"
    resync = await intruder.recv()
    assert resync["type"] == "resync" and resync["message"] is None  # nothing of it leaked
    assert worker.replay_requests[-1].user_id == intruder_user.user_id
    await nothing_more(intruder)
    for socket in (owner, intruder):
        await socket.close()


async def test_frames_of_an_answer_carry_its_attempt(
    stack: Stack, worker: FakeWorker, user: UserRef, database_url: str
) -> None:
    client = await connect(stack, user)
    answer = await pending_answer(client, worker, user, database_url)
    await worker.stream(answer, 1)
    await worker.retry(answer)
    await worker.stream(answer, 1)
    frames = await next_frames(client, 3)
    assert positions(frames) == [("token", 1, 1), ("retrying", 2, 0), ("token", 2, 1)]
    await worker.finish(answer)
    complete = (await client.answer(str(answer.message_id)))[-1]
    assert (complete["attempt"], complete["status"]) == (2, "complete")
    await client.close()
