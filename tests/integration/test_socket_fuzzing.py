"""Thousands of random and malformed frames at a live socket: every one answered, no crash."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat_contracts.base import UserRef
from chat_devtools.client import ChatClient
from chat_devtools.seed import create_user, token_for
from chat_devtools.stack import Stack, StackFactory

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
frame_types = st.sampled_from(["join", "send", "ping", "stop", "JOIN", "", "joined", "error"])
field_values = st.one_of(
    json_values,
    st.uuids().map(str),
    st.text(min_size=0, max_size=300),
    st.just("x" * 9000),
)
structured = st.fixed_dictionaries(
    {"type": frame_types},
    optional={
        "session_id": field_values,
        "text": field_values,
        "client_message_id": field_values,
        "org_id": st.uuids().map(str),
        "user_id": st.uuids().map(str),
        "extra": json_values,
    },
).map(json.dumps)
frames = st.one_of(
    structured,
    json_values.map(json.dumps),
    st.text(max_size=200),
    st.binary(max_size=64),
)


@pytest.fixture(scope="module")
def stack(stack_factory: StackFactory) -> Stack:
    return stack_factory(MESSAGES_PER_MINUTE="100000", SCRIPTED_TOKENS_PER_SECOND="2000")


@pytest.fixture(scope="module")
async def socket(stack: Stack, database_url: str) -> AsyncIterator[ChatClient]:
    user: UserRef = await create_user(database_url)
    chat = await ChatClient.connect(stack.ws_url, token_for(user))
    await chat.join()
    yield chat
    await chat.close()


ANSWERS = ("error", "joined", "accepted", "pong")


async def _replies_until_pongs(socket: ChatClient, pongs: int) -> list[dict[str, Any]]:
    """Replies (not stream events of earlier answers) up to the `pongs`-th pong."""
    replies = []
    while pongs:
        frame = await socket.recv(timeout=10)
        if frame["type"] in ANSWERS:
            replies.append(frame)
        pongs -= frame["type"] == "pong"
    return replies


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(frames, min_size=25, max_size=40))
async def test_every_frame_gets_exactly_one_answer_and_the_socket_survives(
    socket: ChatClient, batch: list[str | bytes]
) -> None:
    for frame in batch:
        await socket.raw(frame)
        await socket.frame({"type": "ping"})  # a marker: its pong follows the frame's answer
        is_ping = isinstance(frame, str) and _is_exact_ping(frame)
        replies = await _replies_until_pongs(socket, 2 if is_ping else 1)
        assert len(replies) == 2, (frame, replies)
        answer, marker = replies
        assert marker["type"] == "pong"
        if is_ping:
            assert answer["type"] == "pong"
        else:
            assert answer["type"] in ("error", "joined", "accepted"), (frame, answer)
        if answer["type"] == "error":
            assert answer["code"] in {"bad_request", "forbidden", "not_joined"}, answer


def _is_exact_ping(frame: str) -> bool:
    try:
        return json.loads(frame) == {"type": "ping"}
    except ValueError:
        return False


async def test_after_the_fuzzing_the_socket_still_chats_and_nothing_crashed(
    socket: ChatClient, stack: Stack
) -> None:
    await socket.join()
    _, frames = await socket.ask("whoami")
    assert frames[-1]["type"] == "complete"
    gateway_log = stack.logs("gateway")
    assert '"level":"error"' not in gateway_log
    assert "Traceback" not in gateway_log
