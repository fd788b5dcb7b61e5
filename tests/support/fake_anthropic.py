"""A local server that speaks the Anthropic Messages streaming (SSE) protocol.

It lets the real SDK code path run offline. It is a test double, and says so: the model it
reports is `test-double-of-<requested model>`. What it does depends on the last user message:
- contains `[429]`: HTTP 429 (rate limited), `Retry-After: 7`;
- contains `[midstream-error]`: a few deltas, then an `error` event;
- contains `[slow]`: streams `REPLY` over and over, a delta every `SLOW_DELTA_SECONDS`, for
  about ten seconds (long enough to be stopped);
- anything else: streams `REPLY` in small deltas with usage.
Every request body is recorded in `requests`; when a client goes away before its stream ended,
the time (`time.monotonic()`) is recorded in `disconnects`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from chat_devtools.stack import free_port
from tests.support.http_server import serving

REPLY = "Finnest is a platform; this reply comes from a local test double of the Messages API."
INPUT_TOKENS = 42
SLOW_DELTA_SECONDS = 0.02
SLOW_REPEATS = 25


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _deltas(text: str, size: int = 4) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


class FakeAnthropic:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.disconnects: list[float] = []
        self.port = free_port()
        self.app = Starlette(routes=[Route("/v1/messages", self.messages, methods=["POST"])])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def messages(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        last = body["messages"][-1]["content"]
        text = last if isinstance(last, str) else json.dumps(last)
        if "[429]" in text:
            return JSONResponse(
                {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}},
                status_code=429,
                headers={"retry-after": "7"},
            )
        model = f"test-double-of-{body['model']}"
        fail_midway = "[midstream-error]" in text
        slow = "[slow]" in text
        return StreamingResponse(
            self._watched(self._stream(model, fail_midway, slow)), media_type="text/event-stream"
        )

    async def _watched(self, stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """The stream, noting when its client went away before the end."""
        finished = False
        try:
            async for chunk in stream:
                yield chunk
            finished = True
        finally:
            if not finished:
                self.disconnects.append(time.monotonic())

    async def _stream(self, model: str, fail_midway: bool, slow: bool) -> AsyncIterator[bytes]:
        yield _sse(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_test_double",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": 1},
                },
            },
        )
        yield _sse(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        )
        deltas = _deltas(REPLY * SLOW_REPEATS if slow else REPLY)
        for index, delta in enumerate(deltas):
            if fail_midway and index == 3:
                yield _sse(
                    "error",
                    {
                        "type": "error",
                        "error": {"type": "overloaded_error", "message": "Overloaded"},
                    },
                )
                return
            yield _sse(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": delta},
                },
            )
            await asyncio.sleep(SLOW_DELTA_SECONDS if slow else 0.005)
        yield _sse("content_block_stop", {"type": "content_block_stop", "index": 0})
        yield _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": len(deltas)},
            },
        )
        yield _sse("message_stop", {"type": "message_stop"})


@contextmanager
def running_fake_anthropic() -> Iterator[FakeAnthropic]:
    fake = FakeAnthropic()
    with serving(fake.app, fake.port, "the fake Messages API"):
        yield fake
