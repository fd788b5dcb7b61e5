"""One answer per session at a time (`BUSY_POLICY`), with the real history service holding the
session's turn: every service a real process on real RabbitMQ and PostgreSQL.

The worker is started per test with the policy under test; the rest of the stack is shared.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Iterator
from uuid import UUID

import pytest

from chat_contracts.base import UserRef
from chat_devtools.client import ChatClient
from chat_devtools.seed import create_user, token_for
from chat_devtools.stack import Stack, StackFactory
from chat_llm_worker.messages import BUSY_MESSAGE
from chat_llm_worker.scripted import scripted_reply
from tests.support.db import wait_for_rows

WITHOUT_WORKER = ("gateway", "orchestrator", "tools", "history")
# The scripted model's default answer at 60 deltas/s: about four seconds.
LONG = "tell me about busy sessions"
SHORT = "echo: the second answer"


@pytest.fixture(scope="module")
def services(stack_factory: StackFactory) -> Stack:
    return stack_factory(
        services=WITHOUT_WORKER, SCRIPTED_TTFT_MS="20", SCRIPTED_TOKENS_PER_SECOND="60"
    )


@pytest.fixture
def stack(services: Stack) -> Iterator[Stack]:
    yield services
    services.stop("llm-worker", signal.SIGKILL)


def start_worker(stack: Stack, policy: str) -> None:
    stack.start("llm-worker", {"BUSY_POLICY": policy})
    stack.wait_ready(("llm-worker",))


@pytest.fixture
async def client(stack: Stack, database_url: str) -> AsyncIterator[ChatClient]:
    user: UserRef = await create_user(database_url)
    chat = await ChatClient.connect(stack.ws_url, token_for(user))
    await chat.join()
    yield chat
    await chat.close()


async def second_while_first_streams(
    stack: Stack, client: ChatClient, policy: str
) -> tuple[str, str]:
    """A worker with `policy`; a long answer streaming, and a second message sent meanwhile."""
    start_worker(stack, policy)
    first = (await client.send(LONG))["reply_message_id"]
    while True:
        frame = await client.recv()
        if frame.get("message_id") == first and frame["type"] == "token":
            break
    second = (await client.send(SHORT))["reply_message_id"]
    return first, second


async def status_of(database_url: str, message_id: str, status: str) -> dict[str, object]:
    rows = await wait_for_rows(
        database_url,
        "SELECT status, content FROM chat.messages WHERE id = :m AND status = :s",
        m=UUID(message_id),
        s=status,
    )
    return rows[0]


async def test_queue_answers_the_second_message_after_the_first(
    stack: Stack, client: ChatClient, database_url: str
) -> None:
    first, second = await second_while_first_streams(stack, client, "queue")
    frames: list[dict[str, object]] = []
    while not any(f["type"] == "complete" and f["message_id"] == second for f in frames):
        frames.append(await client.recv(timeout=20))
    # The second answer streamed only once the first had ended.
    first_done = next(
        i for i, f in enumerate(frames) if f["message_id"] == first and f["type"] == "complete"
    )
    second_tokens = [
        i for i, f in enumerate(frames) if f["message_id"] == second and f["type"] == "token"
    ]
    assert second_tokens and min(second_tokens) > first_done
    assert (await status_of(database_url, second, "complete"))["content"] == "the second answer"
    await status_of(database_url, first, "complete")


async def test_reject_refuses_the_second_message_while_the_first_streams(
    stack: Stack, client: ChatClient, database_url: str
) -> None:
    first, second = await second_while_first_streams(stack, client, "reject")
    refused = (await client.answer(second))[-1]
    assert refused["type"] == "error"
    assert (refused["code"], refused["retryable"], refused["message"]) == (
        "busy",
        True,
        BUSY_MESSAGE,
    )
    assert (await client.answer(first))[-1]["type"] == "complete"
    # Once the first answer has ended, the same message goes through.
    again = (await client.send(SHORT))["reply_message_id"]
    assert (await client.answer(again))[-1]["type"] == "complete"


async def test_interrupt_stops_the_first_answer_and_answers_the_second(
    stack: Stack, client: ChatClient, database_url: str
) -> None:
    first, second = await second_while_first_streams(stack, client, "interrupt")
    assert (await client.answer(second))[-1]["type"] == "complete"
    stopped = await status_of(database_url, first, "stopped")
    # What was generated until the stop is kept, and it is not the whole answer.
    content = str(stopped["content"])
    whole = scripted_reply(LONG)
    assert content and whole.startswith(content) and len(content) < len(whole)
