"""Where answers come from: a provider turns a prompt into a stream of text deltas.

Two implementations, both real:
- `AnthropicProvider` streams from the Messages API with the official SDK;
- `ScriptedProvider` generates a deterministic reply locally (tests, benchmarks, offline demos)
  and names itself as such in every answer, so it is never mistaken for Claude.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol

import anthropic
from anthropic.lib.streaming import AsyncMessageStream
from anthropic.types import MessageParam

from chat_contracts.codes import ErrorCode
from chat_contracts.history import ContextMessage
from chat_llm_worker.scripted import scripted_reply, split_deltas
from chat_llm_worker.settings import LlmWorkerSettings

SCRIPTED_MODEL = "scripted-offline-v1"


@dataclass(frozen=True)
class ProviderRequest:
    system: str
    context: list[ContextMessage]  # the earlier messages of the session
    text: str
    max_tokens: int

    def prompt_chars(self) -> int:
        return (
            len(self.system) + len(self.text) + sum(len(earlier.text) for earlier in self.context)
        )


@dataclass
class TokenCount:
    input_tokens: int = 0
    output_tokens: int = 0


class ProviderError(Exception):
    """A failure the user is told about, with a stable error code (and, when the provider said
    how long to wait, `retry_after` seconds)."""

    def __init__(
        self, code: str, message: str, *, retryable: bool, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after


def _retry_after(exc: anthropic.APIStatusError) -> float | None:
    """The response's `Retry-After` in seconds (the SDK honours it for its own retries)."""
    value = exc.response.headers.get("retry-after")
    try:
        seconds = float(value) if value is not None else None
    except ValueError:  # an HTTP date: not worth parsing for a hint
        return None
    return seconds if seconds is not None and seconds >= 0 else None


class ProviderStream(Protocol):
    """One answer being generated. Iterate for text deltas; `tokens` counts what was used so
    far, also when the iteration ends with a `ProviderError`."""

    model: str
    tokens: TokenCount

    def __aiter__(self) -> AsyncIterator[str]: ...


class Provider(Protocol):
    name: str
    model: str

    def stream(self, request: ProviderRequest) -> ProviderStream: ...


# -- Anthropic ---------------------------------------------------------------------------------


def _messages(request: ProviderRequest) -> list[MessageParam]:
    """Earlier messages plus the new one, as strictly alternating user/assistant messages."""
    merged: list[tuple[Literal["user", "assistant"], str]] = []
    for role, text in [*((t.role, t.text) for t in request.context), ("user", request.text)]:
        if not text:
            continue
        if merged and merged[-1][0] == role:
            merged[-1] = (role, f"{merged[-1][1]}\n\n{text}")
        else:
            merged.append((role, text))
    while merged and merged[0][0] != "user":
        merged.pop(0)
    messages: list[MessageParam] = []
    for role, text in merged:
        if role == "user":
            messages.append({"role": "user", "content": text})
        else:
            messages.append({"role": "assistant", "content": text})
    return messages


def _provider_error(exc: anthropic.APIError) -> ProviderError:
    if isinstance(exc, anthropic.RateLimitError):
        return ProviderError(
            ErrorCode.LLM_RATE_LIMITED,
            "The AI model is getting too many requests right now. Try again in a minute.",
            retryable=True,
            retry_after=_retry_after(exc),
        )
    if isinstance(exc, anthropic.APIConnectionError | anthropic.InternalServerError):
        return ProviderError(
            ErrorCode.LLM_UNAVAILABLE,
            "The AI model could not be reached or is overloaded. Try again in a moment.",
            retryable=True,
        )
    if isinstance(exc, anthropic.BadRequestError | anthropic.AuthenticationError):
        return ProviderError(
            ErrorCode.LLM_ERROR,
            "The AI model refused this request. If it keeps happening, tell your administrator.",
            retryable=False,
        )
    return ProviderError(
        ErrorCode.LLM_ERROR,
        "The AI model stopped with an error before finishing. Try again.",
        retryable=True,
    )


class AnthropicStream:
    def __init__(
        self, client: anthropic.AsyncAnthropic, model: str, request: ProviderRequest
    ) -> None:
        self._client = client
        self._request = request
        self.model = model
        self.tokens = TokenCount()

    async def __aiter__(self) -> AsyncIterator[str]:
        request = self._request
        stream_manager = self._client.messages.stream(
            model=self.model,
            max_tokens=request.max_tokens,
            system=request.system,
            messages=_messages(request),
        )
        deltas = 0
        try:
            # Leaving this block, however (a stop cancels the task iterating here), closes the
            # HTTP response: the model stops generating what nobody will read.
            async with stream_manager as stream:
                async for event in stream:
                    if event.type == "message_start":
                        self.model = event.message.model
                    if event.type != "text":
                        self._count(stream, deltas)
                        continue
                    deltas += 1
                    self._count(stream, deltas)
                    yield event.text
                final = await stream.get_final_message()
                self.model = final.model
                self.tokens = TokenCount(final.usage.input_tokens, final.usage.output_tokens)
        except anthropic.APIError as exc:
            raise _provider_error(exc) from exc

    def _count(self, stream: AsyncMessageStream[None], deltas: int) -> None:
        """Usage so far, for a call that may end before the model reports its final count:
        input tokens from `message_start`, output tokens the larger of the last reported count
        and the deltas received (each delta is at least one token)."""
        try:
            usage = stream.current_message_snapshot.usage
        except Exception:  # no message_start yet
            return
        self.tokens.input_tokens = usage.input_tokens
        self.tokens.output_tokens = max(usage.output_tokens, deltas)


class AnthropicProvider:
    name = "anthropic"

    def __init__(self, settings: LlmWorkerSettings) -> None:
        assert settings.anthropic_api_key is not None
        self.model = settings.anthropic_model
        self._client = anthropic.AsyncAnthropic(
            api_key=settings.anthropic_api_key.get_secret_value(),
            base_url=settings.anthropic_base_url,
            max_retries=settings.anthropic_max_retries,
            timeout=settings.anthropic_timeout_seconds,
        )

    def stream(self, request: ProviderRequest) -> AnthropicStream:
        return AnthropicStream(self._client, self.model, request)

    async def aclose(self) -> None:
        await self._client.close()


# -- Scripted ----------------------------------------------------------------------------------


class ScriptedStream:
    model = SCRIPTED_MODEL

    def __init__(self, ttft: float, interval: float, request: ProviderRequest) -> None:
        self._ttft = ttft
        self._interval = interval
        self._request = request
        self.tokens = TokenCount(input_tokens=math.ceil(request.prompt_chars() / 4))

    async def __aiter__(self) -> AsyncIterator[str]:
        start = time.monotonic() + self._ttft
        for index, delta in enumerate(split_deltas(scripted_reply(self._request.text))):
            # An absolute schedule: the rate holds however long each publish takes.
            delay = start + index * self._interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self.tokens.output_tokens += 1
            yield delta


class ScriptedProvider:
    name = "scripted"
    model = SCRIPTED_MODEL

    def __init__(self, settings: LlmWorkerSettings) -> None:
        self._ttft = settings.scripted_ttft_ms / 1000
        self._interval = 1 / settings.scripted_tokens_per_second

    def stream(self, request: ProviderRequest) -> ScriptedStream:
        return ScriptedStream(self._ttft, self._interval, request)

    async def aclose(self) -> None:
        return None


def create_provider(settings: LlmWorkerSettings) -> AnthropicProvider | ScriptedProvider:
    if settings.provider == "anthropic":
        return AnthropicProvider(settings)
    return ScriptedProvider(settings)
