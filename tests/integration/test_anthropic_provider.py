"""The `anthropic` provider: the real SDK against a local server speaking the Messages API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from chat_contracts.base import UserRef
from chat_devtools.client import ChatClient
from chat_devtools.seed import create_user, token_for
from chat_devtools.stack import Stack, StackFactory
from tests.support.db import wait_for_rows
from tests.support.fake_anthropic import (
    INPUT_TOKENS,
    REPLY,
    FakeAnthropic,
    _deltas,
    running_fake_anthropic,
)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropic]:
    with running_fake_anthropic() as server:
        yield server


@pytest.fixture(scope="module")
def stack(stack_factory: StackFactory, fake: FakeAnthropic) -> Stack:
    return stack_factory(
        LLM_PROVIDER="anthropic",
        ANTHROPIC_API_KEY="test-key-not-a-real-one",
        ANTHROPIC_BASE_URL=fake.url,
        ANTHROPIC_MAX_RETRIES="0",
        ANTHROPIC_MODEL="claude-sonnet-4-6",
    )


@pytest.fixture
async def client(stack: Stack, database_url: str) -> AsyncIterator[ChatClient]:
    user: UserRef = await create_user(database_url)
    chat = await ChatClient.connect(stack.ws_url, token_for(user))
    await chat.join()
    yield chat
    await chat.close()


async def test_answer_streams_through_the_sdk_and_usage_is_recorded(
    client: ChatClient, fake: FakeAnthropic, database_url: str
) -> None:
    accepted, frames = await client.ask("summarise what Finnest does")
    tokens = [f for f in frames if f["type"] == "token"]
    complete = frames[-1]
    assert complete["type"] == "complete", complete
    # Streamed in pieces; token events may coalesce deltas but none is lost.
    assert len(tokens) > 1
    assert [t["seq"] for t in tokens] == list(range(1, len(tokens) + 1))
    assert sum(t["deltas"] for t in tokens) == len(_deltas(REPLY))
    assert complete["text"] == REPLY == "".join(t["text"] for t in tokens)
    assert complete["provider"] == "anthropic"
    assert complete["model"] == "test-double-of-claude-sonnet-4-6"
    assert complete["usage"]["input_tokens"] == INPUT_TOKENS
    request = fake.requests[-1]
    assert request["model"] == "claude-sonnet-4-6" and request["stream"] is True
    assert request["messages"][-1] == {"role": "user", "content": "summarise what Finnest does"}

    rows = await wait_for_rows(
        database_url,
        "SELECT * FROM chat.llm_calls WHERE correlation_id = :c",
        c=accepted["correlation_id"],
    )
    assert rows[0]["input_tokens"] == INPUT_TOKENS
    assert rows[0]["output_tokens"] == len(REPLY) // 4 + (len(REPLY) % 4 > 0)
    # claude-sonnet-4-6 at $3 / $15 per million tokens.
    expected = (INPUT_TOKENS * 3 + rows[0]["output_tokens"] * 15) / 1_000_000
    assert float(rows[0]["cost_usd"]) == pytest.approx(expected, abs=1e-6)


async def test_earlier_turns_are_sent_as_context(client: ChatClient, fake: FakeAnthropic) -> None:
    await client.ask("first question")
    await client.ask("second question")
    messages = fake.requests[-1]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"] == "first question"
    assert messages[1]["content"] == REPLY
    assert messages[2]["content"] == "second question"


async def test_tier_one_makes_no_request_to_the_model(
    client: ChatClient, fake: FakeAnthropic
) -> None:
    before = len(fake.requests)
    _, frames = await client.ask("what's my name?")
    assert frames[-1]["type"] == "complete" and frames[-1]["tool"] == "who_am_i"
    assert len(fake.requests) == before


async def test_rate_limit_becomes_a_retryable_error(client: ChatClient, database_url: str) -> None:
    accepted, frames = await client.ask("please [429]")
    error = frames[-1]
    assert [f["type"] for f in frames] == ["error"]
    assert error["code"] == "llm_rate_limited" and error["retryable"] is True
    assert error["retry_after"] == 7  # the model's Retry-After, passed on to the user
    rows = await wait_for_rows(
        database_url,
        "SELECT status, error_code, content FROM chat.messages "
        "WHERE correlation_id = :c AND role = 'assistant' AND status = 'error'",
        c=accepted["correlation_id"],
    )
    assert rows[0]["error_code"] == "llm_rate_limited"


async def test_error_mid_stream_keeps_the_partial_answer_and_its_usage(
    client: ChatClient, database_url: str
) -> None:
    accepted, frames = await client.ask("go [midstream-error]")
    tokens = [f for f in frames if f["type"] == "token"]
    error = frames[-1]
    assert sum(t["deltas"] for t in tokens) == 3  # the deltas streamed before the failure
    assert [t["seq"] for t in tokens] == list(range(1, len(tokens) + 1))
    assert error["type"] == "error" and error["code"] == "llm_error"
    assert error["seq"] == len(tokens) + 1
    partial = "".join(t["text"] for t in tokens)
    rows = await wait_for_rows(
        database_url,
        "SELECT m.content, c.status, c.input_tokens FROM chat.messages m "
        "JOIN chat.llm_calls c ON c.message_id = m.id WHERE m.correlation_id = :c "
        "AND m.role = 'assistant'",
        c=accepted["correlation_id"],
    )
    assert rows[0]["content"] == partial
    assert rows[0]["status"] == "error" and rows[0]["input_tokens"] == INPUT_TOKENS
