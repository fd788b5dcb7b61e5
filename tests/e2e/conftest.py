"""Browser fixtures: Debian's Chromium driven by Playwright, a signed-in page per test.

Every module gets its own stack (the five services as processes, see tests/conftest.py) and its
own browser; each test gets a fresh browser context (cookies, storage) and page.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from chat_shared.contracts import UserRef
from tests.conftest import ARTIFACTS, StackFactory
from tests.support.seed import create_user, token_for
from tests.support.stack import Stack

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ARTIFACTS / "screenshots"
# Slow enough that a test sees the typing indicator, then the default scripted answer (~190
# tokens) grow over ~4 s.
SCRIPTED_PACE = {"SCRIPTED_TTFT_MS": "700", "SCRIPTED_TOKENS_PER_SECOND": "45"}

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(stack_factory: StackFactory) -> Stack:
    return stack_factory(**SCRIPTED_PACE)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install -y chromium")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        await browser.close()


NewUser = Callable[..., Awaitable[UserRef]]
OpenChat = Callable[..., Awaitable[Page]]


@pytest.fixture
def new_user(database_url: str) -> NewUser:
    async def make(budget_usd: Decimal = Decimal(10), name: str = "Ada Lovelace") -> UserRef:
        return await create_user(database_url, budget_usd=budget_usd, name=name)

    return make


@pytest.fixture
async def contexts(browser: Browser) -> AsyncIterator[list[BrowserContext]]:
    opened: list[BrowserContext] = []
    yield opened
    for context in opened:
        await context.close()


@pytest.fixture
def open_chat(stack: Stack, browser: Browser, contexts: list[BrowserContext]) -> OpenChat:
    """A page signed in as `user` (its auth cookie set as the login would), showing the chat."""

    async def open_(
        user: UserRef,
        *,
        color_scheme: str = "light",
        viewport: dict[str, int] | None = None,
    ) -> Page:
        context = await browser.new_context(
            base_url=stack.gateway_url,
            color_scheme=color_scheme,  # type: ignore[arg-type]
            viewport=viewport or {"width": 1100, "height": 800},  # type: ignore[typeddict-item]
        )
        contexts.append(context)
        await context.add_cookies(
            [
                {
                    "name": "agentchat_token",
                    "value": token_for(user),
                    "url": stack.gateway_url,
                    "httpOnly": True,
                    "sameSite": "Strict",
                }
            ]
        )
        page = await context.new_page()
        await page.goto("/")
        return page

    return open_


async def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=path)
    return path
