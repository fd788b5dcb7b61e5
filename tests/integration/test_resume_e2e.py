"""Streams that survive, end to end: the five services as processes (the real LLM worker with
the scripted model, slowed down), two gateway replicas, no sticky sessions.

- a tab refreshed mid-answer and reopened on the other replica with `after` gets the rest: no
  gap, no repeat, and what it shows adds up to `complete.text`;
- a tab opened mid-answer (no `after`) gets the whole answer so far replayed, then the rest;
- `stop` ends the answer with `complete`, status `stopped`, and the text generated until then;
- a gateway whose broker connection drops closes its sockets with 1012; the client rejoins on
  the other replica with `after` and loses nothing of the answer.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest
import websockets

from chat_contracts.base import UserRef
from chat_devtools.client import ChatClient, Frame
from chat_devtools.seed import create_user, token_for
from chat_devtools.stack import Stack, StackFactory
from tests.support.broker import close_connection_named, gateway_connection_name

# ~155 deltas at 40/s: a four-second answer.
SLOW = {"SCRIPTED_TTFT_MS": "50", "SCRIPTED_TOKENS_PER_SECOND": "40"}
QUESTION = "tell me about streams that survive"
# ~430 deltas: an eleven-second answer, still streaming after the gateway reconnected.
LONG = "echo: " + "a long answer, " * 100


@pytest.fixture(scope="module")
def stack(stack_factory: StackFactory) -> Stack:
    stack = stack_factory(**SLOW)
    stack.start("gateway2", service="gateway")
    stack.wait_ready(("gateway2",))
    return stack


@pytest.fixture
async def user(database_url: str) -> UserRef:
    return await create_user(database_url)


async def connect(stack: Stack, user: UserRef, replica: str) -> ChatClient:
    return await ChatClient.connect(f"ws://127.0.0.1:{stack.ports[replica]}/ws", token_for(user))


async def tokens_until(client: ChatClient, message_id: str, count: int) -> list[Frame]:
    tokens: list[Frame] = []
    while len(tokens) < count:
        frame = await client.recv()
        if frame.get("message_id") == message_id and frame["type"] == "token":
            tokens.append(frame)
    return tokens


async def asked(
    stack: Stack, user: UserRef, tokens: int
) -> tuple[ChatClient, str, str, list[Frame]]:
    """A tab on the first replica that asked QUESTION: its session, answer id, first tokens."""
    client = await connect(stack, user, "gateway")
    session_id = (await client.join())["session_id"]
    reply_id = (await client.send(QUESTION))["reply_message_id"]
    return client, session_id, reply_id, await tokens_until(client, reply_id, tokens)


def text_of(frames: list[Frame]) -> str:
    return "".join(f["text"] for f in frames if f["type"] == "token")


async def test_a_tab_reopened_on_the_other_replica_continues_where_it_was(
    stack: Stack, user: UserRef
) -> None:
    first, session_id, reply_id, shown = await asked(stack, user, 5)
    await first.close()
    await asyncio.sleep(0.5)  # tokens go on being published meanwhile

    last = shown[-1]
    second = await connect(stack, user, "gateway2")
    after = {"message_id": reply_id, "seq": last["seq"], "attempt": last["attempt"]}
    await second.frame({"type": "join", "session_id": session_id, "after": after})
    joined = await second.recv()
    assert joined["type"] == "joined"
    frames = await second.answer(reply_id, timeout=30)
    complete = frames[-1]
    assert complete["type"] == "complete" and complete["status"] == "complete"
    assert [f["seq"] for f in frames] == list(range(last["seq"] + 1, complete["seq"] + 1))
    assert {f["attempt"] for f in frames} == {1}
    assert text_of(shown) + text_of(frames) == complete["text"]
    await second.close()


async def test_a_tab_opened_mid_answer_gets_it_whole_and_so_does_the_first(
    stack: Stack, user: UserRef
) -> None:
    first, session_id, reply_id, early = await asked(stack, user, 3)

    second = await connect(stack, user, "gateway2")
    joined = await second.join(session_id)
    status = {m["message_id"]: m["status"] for m in joined["messages"]}
    assert status[reply_id] == "pending"
    for frames in (early + await first.answer(reply_id, 30), await second.answer(reply_id, 30)):
        complete = frames[-1]
        assert [f["seq"] for f in frames] == list(range(1, complete["seq"] + 1))
        assert text_of(frames) == complete["text"]
    for client in (first, second):
        await client.close()


async def test_stop_ends_the_answer_with_what_was_generated(stack: Stack, user: UserRef) -> None:
    client = await connect(stack, user, "gateway2")
    await client.join()
    accepted = await client.send(QUESTION)
    reply_id = accepted["reply_message_id"]
    shown = await tokens_until(client, reply_id, 2)
    loop = asyncio.get_running_loop()
    stopped_at = loop.time()
    await client.frame({"type": "stop", "message_id": reply_id})
    frames = shown + await client.answer(reply_id, timeout=15)
    complete = frames[-1]
    assert complete["type"] == "complete" and complete["status"] == "stopped"
    assert complete["text"] == text_of(frames)
    assert loop.time() - stopped_at < 2  # the whole answer takes about four seconds
    await client.close()


async def test_a_gateway_that_lost_the_broker_sends_its_clients_elsewhere_losing_nothing(
    stack: Stack, user: UserRef
) -> None:
    client = await connect(stack, user, "gateway")
    session_id = (await client.join())["session_id"]
    reply_id = (await client.send(LONG))["reply_message_id"]
    shown = await tokens_until(client, reply_id, 3)
    if not await asyncio.to_thread(close_connection_named, gateway_connection_name(stack)):
        pytest.skip("rabbitmqctl cannot reach this broker (e.g. a container)")
    with contextlib.suppress(websockets.ConnectionClosed):
        while True:  # what the socket still delivers until the gateway closes it
            frame = await client.recv(30)
            if frame.get("message_id") == reply_id:
                assert frame["type"] == "token", frame
                shown.append(frame)
    assert client.connection.close_code == 1012
    assert [f["seq"] for f in shown] == list(range(1, len(shown) + 1))

    last = shown[-1]
    again = await connect(stack, user, "gateway2")
    after = {"message_id": reply_id, "seq": last["seq"], "attempt": last["attempt"]}
    await again.frame({"type": "join", "session_id": session_id, "after": after})
    assert (await again.recv())["type"] == "joined"
    frames = await again.answer(reply_id, timeout=30)
    complete = frames[-1]
    assert [f["seq"] for f in frames] == list(range(last["seq"] + 1, complete["seq"] + 1))
    assert text_of(shown) + text_of(frames) == complete["text"] == LONG[len("echo: ") :].strip()
    await again.close()
