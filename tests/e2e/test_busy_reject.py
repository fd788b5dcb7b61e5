"""`BUSY_POLICY=reject`: a message sent while the session's answer is still being written is not
taken, and nothing the user typed is lost."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from chat_devtools.stack import Stack, StackFactory
from tests.e2e.browser import SCRIPTED_PACE, NewUser, OpenChat, screenshot
from tests.e2e.chat_page import ChatPage, assert_accessible
from tests.e2e.streams import start_long_answer

pytestmark = pytest.mark.e2e

THEMES = ("light", "dark")


@pytest.fixture(scope="module")
def stack(stack_factory: StackFactory) -> Stack:
    return stack_factory(BUSY_POLICY="reject", **SCRIPTED_PACE)


@pytest.mark.parametrize("theme", THEMES)
async def test_a_message_sent_while_answering_is_refused_and_put_back_in_the_box(
    open_chat: OpenChat, new_user: NewUser, theme: str
) -> None:
    user = await new_user()
    chat = ChatPage(await open_chat(user, color_scheme=theme))
    await chat.ready()
    text, _ = await start_long_answer(chat, 200, 20)
    first = chat.answers.first

    await chat.send("echo: not now")
    await expect(chat.message_box).to_have_value("echo: not now", timeout=10_000)
    refused = chat.user_messages.nth(1)
    await expect(refused).to_have_attribute("data-status", "failed")
    await expect(refused).to_contain_text("Not sent:")
    await expect(refused).to_contain_text("back in the message box")
    await expect(chat.page.locator("#alerter")).to_contain_text("back in the message box")
    await expect(chat.answers).to_have_count(1)
    await assert_accessible(chat.page, f"busy, {theme}")
    await screenshot(chat.page, f"busy-{theme}")

    # The first answer was not disturbed; once it is done, the kept text can be sent.
    await expect(first).to_have_attribute("data-state", "done", timeout=30_000)
    await expect(first.locator(".md")).to_have_text(text)
    await chat.message_box.press("Enter")
    second = await chat.wait_answered(count=2)
    await expect(second.locator(".md")).to_have_text("not now")
