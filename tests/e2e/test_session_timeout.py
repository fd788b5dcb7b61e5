"""An idle session ends: the page says so, and the next message starts a new session."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from chat_devtools.stack import Stack, StackFactory
from tests.e2e.browser import SCRIPTED_PACE, NewUser, OpenChat, screenshot
from tests.e2e.chat_page import ChatPage, assert_accessible

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(stack_factory: StackFactory) -> Stack:
    return stack_factory(
        SESSION_IDLE_TIMEOUT_SECONDS="2", SESSION_SWEEP_INTERVAL_SECONDS="0.25", **SCRIPTED_PACE
    )


async def test_idle_timeout_shows_the_session_ended_notice_and_the_next_message_starts_anew(
    open_chat: OpenChat, new_user: NewUser
) -> None:
    user = await new_user()
    chat = ChatPage(await open_chat(user))
    await chat.ready()
    await chat.send("who am I")
    await chat.wait_answered(count=1)
    first_session = await chat.session_id()

    ended = chat.log.locator(".notice[data-kind='ended']")
    await expect(ended).to_contain_text("This session ended", timeout=15_000)
    await expect(chat.status).to_contain_text("This session ended")
    for theme in ("light", "dark"):
        await chat.set_theme(theme)
        await assert_accessible(chat.page, f"session ended, {theme}")
        await screenshot(chat.page, f"session-ended-{theme}")

    # A refresh shows the ended session's history, and says it has ended.
    await chat.page.reload()
    await chat.ready()
    await expect(chat.user_messages).to_have_count(1)
    await expect(ended).to_have_count(1)
    assert await chat.session_id() == first_session

    await chat.send("whoami")
    await expect(chat.log.locator(".notice").last).to_have_text("A new session has started.")
    answer = await chat.wait_answered(count=2)
    await expect(answer.locator(".md")).to_contain_text(user.email)
    new_session = await chat.session_id()
    assert new_session is not None and new_session != first_session
    # The old conversation stays on screen above the new one.
    await expect(chat.user_messages).to_have_count(2)
