"""Helpers of the stream tests: a long answer whose every character is known, watched as it grows,
and the page's WebSocket routed through Playwright so a test can read what the page sends and
drop the connection in the middle of an answer."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from playwright.async_api import Locator, Page, WebSocketRoute, expect

from tests.e2e.chat_page import ANSWER_TIMEOUT_MS, ChatPage
from tests.e2e.conftest import sign_in


def long_text(words: int) -> str:
    """Plain words (no Markdown), so the rendered text is the answer's text: at the test stack's
    45 deltas/s of ~3.5 characters, 400 words take about 15 s."""
    return " ".join(f"w{n:04d}" for n in range(1, words + 1))


@dataclass
class Observation:
    state: str
    text: str


async def look(answer: Locator) -> Observation:
    state, text = await answer.evaluate(
        "a => [a.dataset.state, a.querySelector('.md').textContent]"
    )
    return Observation(state, text.strip())


async def watch(
    answer: Locator, expected: str, until: tuple[str, ...] = ("done",)
) -> list[Observation]:
    """Observe a streaming answer every 100 ms until its state is one of `until`; every text seen
    is a prefix of `expected` (nothing doubled, nothing missing before what is shown)."""
    seen: list[Observation] = []
    deadline = time.monotonic() + ANSWER_TIMEOUT_MS / 1000 * 2
    while time.monotonic() < deadline:
        now = await look(answer)
        assert expected.startswith(now.text), f"shown text is not a prefix: …{now.text[-80:]!r}"
        seen.append(now)
        if now.state in until:
            return seen
        await answer.page.wait_for_timeout(100)
    raise AssertionError(f"the answer never reached {until}: last {seen[-1]}")


async def wait_for_text(answer: Locator, characters: int) -> Observation:
    """The answer once it shows at least `characters` characters, still streaming."""
    await expect(answer).to_have_attribute("data-state", "streaming", timeout=ANSWER_TIMEOUT_MS)
    await expect(answer.locator(".md")).to_have_text(
        re.compile(rf"[\s\S]{{{characters},}}"), timeout=ANSWER_TIMEOUT_MS
    )
    now = await look(answer)
    assert now.state == "streaming", now
    return now


async def start_long_answer(chat: ChatPage, words: int, shown: int) -> tuple[str, Observation]:
    """Ask for a long answer (`words` words); back once `shown` characters of it are shown."""
    text = long_text(words)
    await chat.send(f"echo: {text}")
    return text, await wait_for_text(chat.answers.first, shown)


@dataclass
class SocketTap:
    """Every WebSocket of a page goes through here: the frames the page sent, and a way to drop
    the connection (both sides) as a network would."""

    sent: list[dict[str, Any]] = field(default_factory=list)
    connections: list[tuple[WebSocketRoute, WebSocketRoute]] = field(default_factory=list)

    async def install(self, page: Page) -> None:
        await page.route_web_socket(re.compile(r"/ws$"), self._route)

    def _route(self, page_side: WebSocketRoute) -> None:
        server_side = page_side.connect_to_server()

        def forward(message: str | bytes) -> None:
            if isinstance(message, str):
                self.sent.append(json.loads(message))
            server_side.send(message)

        page_side.on_message(forward)
        self.connections.append((page_side, server_side))

    def frames(self, kind: str) -> list[dict[str, Any]]:
        return [frame for frame in self.sent if frame.get("type") == kind]

    async def drop(self, code: int, reason: str) -> None:
        page_side, server_side = self.connections[-1]
        await server_side.close(code=1001, reason="test: connection dropped")
        await page_side.close(code=code, reason=reason)


async def tapped_chat(page: Page, email: str) -> tuple[ChatPage, SocketTap]:
    """`page` signed in as `email` and showing the chat, its WebSockets through a tap."""
    tap = SocketTap()
    await tap.install(page)
    await sign_in(page, email)
    chat = ChatPage(page)
    await chat.ready()
    return chat, tap
