"""Helpers of the stream tests: a long answer whose every character is known, watched as it grows,
and the page's WebSocket routed through Playwright so a test can read what the page sends and
drop the connection in the middle of an answer."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from playwright.async_api import ElementHandle, Locator, Page, WebSocketRoute, expect

from tests.e2e.browser import sign_in
from tests.e2e.chat_page import ANSWER_TIMEOUT_MS, ChatPage


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


# Records the answer's state and text after every change of its DOM (a MutationObserver's callback
# runs once a change is whole, so no half-rendered block is seen).
_RECORD = """a => {
    const md = a.querySelector('.md');
    const seen = [[a.dataset.state, md.textContent]];
    a.__seen = seen;
    new MutationObserver(() => seen.push([a.dataset.state, md.textContent])).observe(a, {
        subtree: true, childList: true, characterData: true, attributes: true,
    });
}"""


async def record(answer: Locator) -> ElementHandle:
    """Start recording every state and text of the answer's bubble (see `recorded`)."""
    bubble = await answer.element_handle()
    await bubble.evaluate(_RECORD)
    return bubble


async def recorded(
    bubble: ElementHandle, expected: str, until: tuple[str, ...] = ("done",)
) -> list[Observation]:
    """Every state and text the bubble went through until its state is one of `until`. The
    bubble is the same element throughout (not replaced by another), and every text it showed
    is a prefix of `expected` (nothing doubled, nothing missing before what is shown)."""
    page = await bubble.owner_frame()
    assert page is not None
    await page.wait_for_function(
        "([a, until]) => !a.isConnected || until.includes(a.dataset.state)",
        arg=[bubble, list(until)],
        timeout=ANSWER_TIMEOUT_MS * 2,
    )
    assert await bubble.evaluate("a => a.isConnected"), "the answer's bubble was replaced"
    records = await bubble.evaluate("a => a.__seen")
    seen = [Observation(state, text.strip()) for state, text in records]
    for now in seen:
        assert expected.startswith(now.text), f"shown text is not a prefix: …{now.text[-80:]!r}"
    return seen


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
    """Every WebSocket of a page goes through here: the frames the page sent, and ways to drop
    the connection (both sides) as a network would, or to silence it (the server's frames stop
    reaching the page, without a close: a network gone quiet)."""

    sent: list[dict[str, Any]] = field(default_factory=list)
    connections: list[tuple[WebSocketRoute, WebSocketRoute]] = field(default_factory=list)
    muted: set[int] = field(default_factory=set)

    async def install(self, page: Page) -> None:
        await page.route_web_socket(re.compile(r"/ws$"), self._route)

    def _route(self, page_side: WebSocketRoute) -> None:
        server_side = page_side.connect_to_server()

        number = len(self.connections)

        def upstream(message: str | bytes) -> None:
            if isinstance(message, str):
                self.sent.append(json.loads(message))
            server_side.send(message)

        def downstream(message: str | bytes) -> None:
            if number not in self.muted:
                page_side.send(message)

        page_side.on_message(upstream)
        server_side.on_message(downstream)
        self.connections.append((page_side, server_side))

    def mute(self) -> None:
        """From now on nothing the server sends on the current connection reaches the page."""
        self.muted.add(len(self.connections) - 1)

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
