"""The message path end to end: five services as processes, a real WebSocket client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from uuid import UUID

import pytest

from chat_contracts.base import UserRef
from chat_devtools.client import ChatClient
from chat_devtools.seed import create_user, token_for
from chat_devtools.stack import Stack, StackFactory
from tests.support.db import fetch, wait_for_rows


@pytest.fixture(scope="module")
def stack(stack_factory: StackFactory) -> Stack:
    return stack_factory()


@pytest.fixture
async def user(database_url: str) -> UserRef:
    return await create_user(database_url)


@pytest.fixture
async def client(stack: Stack, user: UserRef) -> AsyncIterator[ChatClient]:
    chat = await ChatClient.connect(stack.ws_url, token_for(user))
    yield chat
    await chat.close()


async def test_who_am_i_is_answered_by_the_tool_without_an_llm_call(
    client: ChatClient, user: UserRef, database_url: str
) -> None:
    joined = await client.join()
    assert joined["type"] == "joined"
    assert joined["messages"] == []

    accepted, frames = await client.ask("Who am I?")

    assert [f["type"] for f in frames] == ["tool_call", "tool_result", "complete"]
    assert [f["seq"] for f in frames] == [1, 2, 3]
    call, result, complete = frames
    assert call["tool"] == "who_am_i"
    assert result["output"] == {
        "name": user.name,
        "email": user.email,
        "user_id": str(user.user_id),
        "org_id": str(user.org_id),
    }
    assert user.name in complete["text"] and user.email in complete["text"]
    assert complete["tool"] == "who_am_i" and complete["model"] is None

    correlation_id = accepted["correlation_id"]
    audit = await wait_for_rows(
        database_url,
        "SELECT * FROM chat.tool_audit WHERE correlation_id = :c AND status = 'ok'",
        c=correlation_id,
    )
    assert len(audit) == 1
    assert audit[0]["tool"] == "who_am_i" and audit[0]["output"]["email"] == user.email
    messages = await wait_for_rows(
        database_url,
        "SELECT role, content, status FROM chat.messages WHERE correlation_id = :c "
        "AND status = 'complete' ORDER BY role DESC",
        count=2,
        c=correlation_id,
    )
    assert [(m["role"], m["status"]) for m in messages] == [
        ("user", "complete"),
        ("assistant", "complete"),
    ]
    calls = await fetch(
        database_url, "SELECT * FROM chat.llm_calls WHERE correlation_id = :c", c=correlation_id
    )
    assert calls == []


async def test_tier_two_streams_tokens_in_order_and_persists_the_answer(
    client: ChatClient, database_url: str
) -> None:
    await client.join()
    accepted, frames = await client.ask("summarise what Finnest does")

    tokens = [f for f in frames if f["type"] == "token"]
    complete = frames[-1]
    assert complete["type"] == "complete"
    # Streamed in pieces; a token event may join several deltas, none is lost.
    assert len(tokens) > 1
    assert [t["seq"] for t in tokens] == list(range(1, len(tokens) + 1))
    assert complete["seq"] == len(tokens) + 1
    assert complete["text"] == "".join(t["text"] for t in tokens)
    assert complete["provider"] == "scripted" and complete["model"] == "scripted-offline-v1"
    assert "offline scripted model" in complete["text"]

    correlation_id = accepted["correlation_id"]
    rows = await wait_for_rows(
        database_url,
        "SELECT * FROM chat.messages WHERE correlation_id = :c AND status = 'complete'",
        count=2,
        c=correlation_id,
    )
    assistant = next(r for r in rows if r["role"] == "assistant")
    assert assistant["content"] == complete["text"]
    assert assistant["model"] == "scripted-offline-v1" and assistant["tier"] == 2
    calls = await wait_for_rows(
        database_url, "SELECT * FROM chat.llm_calls WHERE correlation_id = :c", c=correlation_id
    )
    assert len(calls) == 1
    assert calls[0]["output_tokens"] == sum(t["deltas"] for t in tokens)
    assert calls[0]["status"] == "ok" and calls[0]["ttft_ms"] is not None


async def test_budget_of_zero_ends_the_turn_with_a_friendly_error(
    stack: Stack, database_url: str
) -> None:
    broke = await create_user(database_url, budget_usd=Decimal(0))
    chat = await ChatClient.connect(stack.ws_url, token_for(broke))
    try:
        await chat.join()
        _, frames = await chat.ask("summarise what Finnest does")
        assert [f["type"] for f in frames] == ["error"]
        assert frames[0]["code"] == "budget_exceeded"
        assert "who am I" in frames[0]["message"]
        # Tier 1 still works.
        _, frames = await chat.ask("whoami")
        assert frames[-1]["type"] == "complete"
    finally:
        await chat.close()


async def test_reconnect_restores_the_session_with_its_history(stack: Stack, user: UserRef) -> None:
    first = await ChatClient.connect(stack.ws_url, token_for(user))
    joined = await first.join()
    session_id = joined["session_id"]
    _, frames = await first.ask("who am i")
    answer = frames[-1]["text"]
    await first.close()

    second = await ChatClient.connect(stack.ws_url, token_for(user))
    try:
        rejoined = await second.join(session_id)
        assert rejoined["type"] == "joined" and rejoined["session_id"] == session_id
        history = [(m["role"], m["text"]) for m in rejoined["messages"]]
        assert history == [("user", "who am i"), ("assistant", answer)]
        assert rejoined["messages"][1]["tool_calls"][0]["tool"] == "who_am_i"
    finally:
        await second.close()


async def test_another_users_session_is_forbidden_and_leaks_nothing(
    stack: Stack, user: UserRef, database_url: str
) -> None:
    owner = await ChatClient.connect(stack.ws_url, token_for(user))
    session_id = (await owner.join())["session_id"]
    same_org = await create_user(database_url, org=None)
    for intruder_user in (same_org, await create_user(database_url)):
        intruder = await ChatClient.connect(stack.ws_url, token_for(intruder_user))
        try:
            refused = await intruder.join(session_id)
            assert refused["type"] == "error" and refused["code"] == "forbidden"
            # Sending without a session of its own is refused too; nothing reaches the owner's.
            refused_send = await intruder.send("who am i")
            assert refused_send["code"] == "not_joined"
        finally:
            await intruder.close()
    await owner.close()


async def test_a_session_of_another_user_in_the_same_org_is_forbidden(
    stack: Stack, user: UserRef, database_url: str
) -> None:
    colleague = await create_user(database_url, org=await _org_name(database_url, user.org_id))
    owner = await ChatClient.connect(stack.ws_url, token_for(user))
    session_id = (await owner.join())["session_id"]
    other = await ChatClient.connect(stack.ws_url, token_for(colleague))
    try:
        refused = await other.join(session_id)
        assert refused["code"] == "forbidden"
    finally:
        await other.close()
        await owner.close()


async def _org_name(database_url: str, org_id: UUID) -> str:
    rows = await fetch(database_url, "SELECT name FROM identity.orgs WHERE id = :o", o=org_id)
    return str(rows[0]["name"])


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ("this is not json", "Invalid JSON"),
        ('{"type": "dance"}', "does not match any of the expected tags"),
        ('{"type": "send", "client_message_id": "x"}', "text"),
        ('{"type": "send", "text": "hi"}', "client_message_id"),
        ('{"type": "send", "text": "   ", "client_message_id": "x"}', "empty"),
        ('{"type": "send", "text": 5, "client_message_id": "x"}', "text"),
        ('{"type": "join", "session_id": "not-a-uuid"}', "session_id"),
        ('{"type": "join", "org_id": "00000000-0000-0000-0000-000000000000"}', "org_id"),
        ("[1, 2, 3]", "frame"),
    ],
)
async def test_bad_input_gets_bad_request_and_the_socket_stays_usable(
    client: ChatClient, payload: str, fragment: str
) -> None:
    await client.join()
    await client.raw(payload)
    error = await client.recv_type("error")
    assert error["code"] == "bad_request"
    assert fragment in error["message"]
    await client.frame({"type": "ping"})
    assert (await client.recv_type("pong"))["type"] == "pong"


async def test_over_long_text_is_refused_with_bad_request(client: ChatClient) -> None:
    await client.join()
    error = await client.send("x" * 8001)
    assert error["type"] == "error" and error["code"] == "bad_request"
    assert "8000" in error["message"]
    _, frames = await client.ask("whoami")
    assert frames[-1]["type"] == "complete"


async def test_binary_frames_are_refused_and_the_socket_stays_usable(client: ChatClient) -> None:
    await client.raw(b"\x00\x01")
    assert (await client.recv_type("error"))["code"] == "bad_request"
    assert (await client.join())["type"] == "joined"


async def test_send_before_join_is_refused(client: ChatClient) -> None:
    error = await client.send("hello")
    assert error["code"] == "not_joined"


async def test_a_socket_without_a_valid_token_is_refused(stack: Stack) -> None:
    import websockets

    for token in (None, "not-a-jwt"):
        with pytest.raises(websockets.InvalidStatus) as refused:
            await ChatClient.connect(stack.ws_url, token)
        assert refused.value.response.status_code == 403


async def test_without_an_otlp_endpoint_nothing_is_traced_but_metrics_are_served(
    stack: Stack, client: ChatClient, amqp_url: str
) -> None:
    """This module's stack has no OTEL_EXPORTER_OTLP_ENDPOINT: no trace header on any message,
    no trace id in any log line; /metrics still answers."""
    import aio_pika
    import httpx

    from chat_contracts.topology import Topology, session_binding

    session_id = (await client.join())["session_id"]
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        probe = await channel.declare_queue(exclusive=True, auto_delete=True)
        events = await channel.get_exchange(Topology(stack.env["BROKER_PREFIX"]).events.name)
        await probe.bind(events, routing_key=session_binding(session_id))
        _, frames = await client.ask("summarise what Finnest does")
        await client.ask("who am i")
        headers = []
        while (message := await probe.get(no_ack=True, fail=False, timeout=2)) is not None:
            headers.append(message.headers)
    kinds = len(frames) + 3  # at least the tokens, the user messages and a routed event
    assert len(headers) >= kinds
    assert not [h for h in headers if "traceparent" in h or "baggage" in h]
    assert "trace_id" not in stack.all_logs()
    async with httpx.AsyncClient() as http:
        metrics = await http.get(f"{stack.gateway_url}/metrics")
    assert metrics.status_code == 200
    assert "chat_gateway_open_sockets" in metrics.text
