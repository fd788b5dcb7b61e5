"""Browser fixtures: Debian's Chromium driven by Playwright, pages signed in through the form.

Every module gets its own stack (the five services as processes, see tests/conftest.py) and its
own browser; each test gets a fresh browser context (cookies, storage) and page.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from chat_contracts.base import UserRef
from chat_devtools.seed import create_user
from chat_devtools.stack import Stack, StackFactory
from tests.e2e.browser import (
    CHROMIUM,
    CHROMIUM_FLAGS,
    PASSWORD,
    SCRIPTED_PACE,
    NewPage,
    NewUser,
    OpenChat,
    sign_in,
)


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


@pytest.fixture
def new_user(database_url: str) -> NewUser:
    async def make(budget_usd: Decimal = Decimal(10), name: str = "Ada Lovelace") -> UserRef:
        return await create_user(database_url, budget_usd=budget_usd, name=name, password=PASSWORD)

    return make


@pytest.fixture
async def contexts(browser: Browser) -> AsyncIterator[list[BrowserContext]]:
    opened: list[BrowserContext] = []
    yield opened
    for context in opened:
        await context.close()


@pytest.fixture
def new_page(stack: Stack, browser: Browser, contexts: list[BrowserContext]) -> NewPage:
    """A page in a fresh browser context (no cookies, no storage), not signed in."""

    async def make(*, color_scheme: str = "light", viewport: dict[str, int] | None = None) -> Page:
        context = await browser.new_context(
            base_url=stack.gateway_url,
            color_scheme=color_scheme,  # type: ignore[arg-type]
            viewport=viewport or {"width": 1100, "height": 800},  # type: ignore[typeddict-item]
        )
        contexts.append(context)
        return await context.new_page()

    return make


@pytest.fixture
def open_chat(new_page: NewPage) -> OpenChat:
    """A page signed in as `user` through the sign-in form, showing the chat."""

    async def open_(
        user: UserRef, *, color_scheme: str = "light", viewport: dict[str, int] | None = None
    ) -> Page:
        page = await new_page(color_scheme=color_scheme, viewport=viewport)
        await sign_in(page, user.email)
        return page

    return open_
