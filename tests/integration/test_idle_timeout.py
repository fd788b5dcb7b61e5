"""Idle sessions end, sockets are told, and the next message starts a fresh session."""

from __future__ import annotations

import pytest

from chat_devtools.client import ChatClient
from chat_devtools.seed import create_user, token_for
from chat_devtools.stack import Stack, StackFactory
from tests.support.db import fetch


@pytest.fixture(scope="module")
def stack(stack_factory: StackFactory) -> Stack:
    return stack_factory(SESSION_IDLE_TIMEOUT_SECONDS="1.5", SESSION_SWEEP_INTERVAL_SECONDS="0.25")


async def test_idle_session_ends_and_the_next_send_starts_a_new_one(
    stack: Stack, database_url: str
) -> None:
    user = await create_user(database_url)
    chat = await ChatClient.connect(stack.ws_url, token_for(user))
    try:
        old = (await chat.join())["session_id"]
        await chat.ask("whoami")

        ended = await chat.recv_type("session_ended", timeout=10)
        assert ended["session_id"] == old and ended["reason"] == "idle_timeout"
        rows = await fetch(database_url, "SELECT ended_at FROM chat.sessions WHERE id = :s", s=old)
        assert rows[0]["ended_at"] is not None

        await chat.frame({"type": "send", "text": "whoami", "client_message_id": "after-idle"})
        joined = await chat.recv_type("joined")
        assert joined["previous_session_id"] == old
        assert joined["session_id"] != old and joined["messages"] == []
        accepted = await chat.recv_type("accepted")
        assert accepted["session_id"] == joined["session_id"]
        frames = await chat.answer(accepted["reply_message_id"])
        assert frames[-1]["type"] == "complete"
    finally:
        await chat.close()


async def test_rejoining_an_ended_session_shows_its_history_as_ended(
    stack: Stack, database_url: str
) -> None:
    user = await create_user(database_url)
    chat = await ChatClient.connect(stack.ws_url, token_for(user))
    old = (await chat.join())["session_id"]
    await chat.ask("whoami")
    await chat.recv_type("session_ended", timeout=10)
    await chat.close()

    again = await ChatClient.connect(stack.ws_url, token_for(user))
    try:
        joined = await again.join(old)
        assert joined["ended"] is True and len(joined["messages"]) == 2
    finally:
        await again.close()
