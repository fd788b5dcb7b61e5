import asyncio

import pytest

from chat_contracts.history import ContextMessage
from chat_llm_worker.providers import (
    ProviderRequest,
    ScriptedProvider,
    _messages,
    scripted_reply,
    split_deltas,
)
from chat_llm_worker.settings import LlmWorkerSettings


def test_deltas_are_three_or_four_characters_and_rebuild_the_reply() -> None:
    reply = scripted_reply("hello")
    deltas = split_deltas(reply)
    assert "".join(deltas) == reply
    assert {len(d) for d in deltas[:-1]} == {3, 4}


def test_scripted_model_says_what_it_is() -> None:
    assert "offline scripted model" in scripted_reply("anything")
    assert "no AI model was called" in scripted_reply("anything")


def test_echo_prompts_are_answered_verbatim() -> None:
    assert scripted_reply("echo: <b>hi</b>") == "<b>hi</b>"


async def test_scripted_stream_keeps_its_rate_and_counts_tokens() -> None:
    settings = LlmWorkerSettings(scripted_ttft_ms=50, scripted_tokens_per_second=200)
    stream = ScriptedProvider(settings).stream(ProviderRequest("sys", [], "echo: " + "x" * 70, 64))
    loop = asyncio.get_running_loop()
    started = loop.time()
    deltas = [delta async for delta in stream]
    elapsed = loop.time() - started
    assert "".join(deltas) == "x" * 70
    assert stream.tokens.output_tokens == len(deltas) == 20
    # 50 ms to the first token, then 19 intervals of 5 ms.
    assert elapsed == pytest.approx(0.05 + 19 * 0.005, abs=0.1)


def test_messages_alternate_and_start_with_the_user() -> None:
    request = ProviderRequest(
        system="s",
        context=[
            ContextMessage(role="assistant", text="orphan answer"),
            ContextMessage(role="user", text="a"),
            ContextMessage(role="user", text="b"),
            ContextMessage(role="assistant", text="c"),
        ],
        text="d",
        max_tokens=10,
    )
    assert _messages(request) == [
        {"role": "user", "content": "a\n\nb"},
        {"role": "assistant", "content": "c"},
        {"role": "user", "content": "d"},
    ]
