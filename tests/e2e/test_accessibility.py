"""axe-core in real Chromium: no violations in any state of the page, in both themes.

Screenshots of each state go to test-artifacts/screenshots/ (look at them: axe does not judge
whether a page looks right).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from playwright.async_api import expect

from chat_devtools.stack import Stack
from tests.e2e.browser import NewPage, NewUser, OpenChat, screenshot
from tests.e2e.chat_page import ChatPage, assert_accessible

pytestmark = pytest.mark.e2e

THEMES = ("light", "dark")


@pytest.mark.parametrize("theme", THEMES)
async def test_sign_in_page(new_page: NewPage, theme: str) -> None:
    page = await new_page(color_scheme=theme)
    await page.goto("/login")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await expect(page.locator("html")).to_have_attribute("data-theme", theme)
    await assert_accessible(page, f"sign-in, {theme}")
    await screenshot(page, f"sign-in-{theme}")

    await page.get_by_label("Email").fill("nobody@example.com")
    await page.get_by_label("Password").fill("not the password")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_have_text("Incorrect email or password.")
    await assert_accessible(page, f"sign-in error, {theme}")
    await screenshot(page, f"sign-in-error-{theme}")


@pytest.mark.parametrize("theme", THEMES)
async def test_conversation_states(open_chat: OpenChat, new_user: NewUser, theme: str) -> None:
    user = await new_user()
    chat = ChatPage(await open_chat(user, color_scheme=theme))
    await chat.ready()
    await expect(chat.page.locator("html")).to_have_attribute("data-theme", theme)

    await expect(chat.page.get_by_role("heading", name="How can I help?")).to_be_visible()
    await assert_accessible(chat.page, f"empty chat, {theme}")
    await screenshot(chat.page, f"empty-{theme}")

    await chat.send("who am I")
    answer = await chat.wait_answered(count=1)
    await answer.get_by_role("button", name="who_am_i").click()
    await chat.page.wait_for_timeout(300)  # the opening animation
    await assert_accessible(chat.page, f"tool card expanded, {theme}")
    await screenshot(chat.page, f"card-expanded-{theme}")

    await chat.send("Summarise what this platform does")
    streaming = chat.answers.nth(1)
    await expect(streaming).to_have_attribute("data-state", "streaming", timeout=10_000)
    await expect(chat.stop_button).to_be_visible()
    await assert_accessible(chat.page, f"streaming, {theme}")
    await screenshot(chat.page, f"streaming-{theme}")

    await chat.wait_answered(count=2)
    await assert_accessible(chat.page, f"completed, {theme}")
    await screenshot(chat.page, f"completed-{theme}")


@pytest.mark.parametrize("theme", THEMES)
async def test_error_states(
    stack: Stack, open_chat: OpenChat, new_user: NewUser, theme: str
) -> None:
    user = await new_user(budget_usd=Decimal(0))
    chat = ChatPage(await open_chat(user, color_scheme=theme))
    await chat.ready()
    await chat.send("Summarise what this platform does")
    await chat.wait_answered(count=1, state="error")
    await assert_accessible(chat.page, f"budget exceeded, {theme}")
    await screenshot(chat.page, f"budget-exceeded-{theme}")

    stack.stop("gateway")
    try:
        await expect(chat.page.locator("#banner")).to_be_visible()
        await chat.send("who am I")  # waits for the connection
        await assert_accessible(chat.page, f"reconnecting, {theme}")
        await screenshot(chat.page, f"reconnecting-{theme}")
    finally:
        stack.start("gateway")
        stack.wait_ready(("gateway",))
    await chat.page.evaluate("() => window.dispatchEvent(new Event('online'))")  # no backoff wait
    await chat.wait_answered(count=2)
