"""An answer's timeline ("why was this slow?") in real Chromium, against the five services.

What the page shows is compared with what the gateway's API returns for the same message, fetched
with the page's own cookie: no figure is known in advance.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import Locator, Page, Request, expect

from chat_devtools.stack import Stack, StackFactory
from tests.e2e.browser import SCRIPTED_PACE, NewPage, NewUser, OpenChat, screenshot, sign_in
from tests.e2e.chat_page import ANSWER_TIMEOUT_MS, ChatPage, assert_accessible

pytestmark = pytest.mark.e2e

MS = re.compile(r"^(-?\d+(?:\.\d)?) ms$")


@pytest.fixture(scope="module")
def stack(stack_factory: StackFactory) -> Stack:
    # A short wait for history, so the test of "history is not answering" is quick.
    return stack_factory(**SCRIPTED_PACE, HISTORY_RPC_TIMEOUT_SECONDS="3")


def shown_ms(text: str) -> float:
    match = MS.match(text.strip())
    assert match is not None, f"not a figure in ms: {text!r}"
    return float(match.group(1))


def close_to(shown: float, exact: float) -> bool:
    """Shown as the page rounds: one decimal below 10 ms, whole milliseconds above."""
    return abs(shown - exact) <= (0.05 if abs(exact) < 10 else 0.5) + 1e-9


async def api_timeline(page: Page, answer: Locator) -> dict[str, Any]:
    message_id = await answer.get_attribute("data-message-id")
    response = await page.request.get(f"/api/messages/{message_id}/timeline")
    assert response.status == 200, await response.text()
    timeline: dict[str, Any] = await response.json()
    return timeline


def timeline_toggle(answer: Locator) -> Locator:
    return answer.get_by_role("button", name="Timeline")


async def open_timeline(answer: Locator) -> Locator:
    toggle = timeline_toggle(answer)
    await expect(toggle).to_have_attribute("aria-expanded", "false")
    await toggle.click()
    await expect(toggle).to_have_attribute("aria-expanded", "true")
    return await loaded_panel(answer)


async def loaded_panel(answer: Locator) -> Locator:
    panel = answer.locator(".timeline-panel")
    await expect(panel).to_have_attribute("data-state", "loaded", timeout=10_000)
    await expect(panel).to_be_visible()
    return panel


async def assert_shows(page: Page, answer: Locator, panel: Locator) -> dict[str, Any]:
    """The panel shows the API's segments, in order, with its figures, adding up to its total."""
    api = await api_timeline(page, answer)
    assert api["status"] == "complete"
    assert abs(sum(s["ms"] for s in api["segments"]) - api["summary"]["total_ms"]) < 0.01

    rows = panel.locator("tr.timeline-segment")
    names = await rows.evaluate_all("rows => rows.map(r => r.dataset.segment)")
    assert names == [s["name"] for s in api["segments"]]
    shown = [shown_ms(t) for t in await rows.locator(".timeline-ms").all_inner_texts()]
    for figure, segment in zip(shown, api["segments"], strict=True):
        assert close_to(figure, segment["ms"]), (figure, segment)
    total = shown_ms(await panel.locator("tr.timeline-total td").inner_text())
    assert close_to(total, api["summary"]["total_ms"])
    # What is shown adds up to the total shown, give or take each figure's rounding.
    assert abs(sum(shown) - total) <= 0.5 * (len(shown) + 1)

    first_words = await panel.locator(".timeline-first-words").inner_text()
    lag = re.search(r"delivery lag \(worker to your screen\) (\S+ ms)", first_words)
    assert lag is not None, first_words
    assert close_to(shown_ms(lag.group(1)), api["summary"]["delivery_lag_ms"])
    return api


async def test_the_timeline_of_each_answer_shows_the_api_figures_also_after_a_refresh(
    new_page: NewPage, open_chat: OpenChat, new_user: NewUser
) -> None:
    user = await new_user()
    chat = ChatPage(await open_chat(user))
    page = chat.page
    await chat.ready()

    timeline_requests: list[str] = []

    def count_timeline_request(request: Request) -> None:
        if request.url.endswith("/timeline"):
            timeline_requests.append(request.url)

    page.on("request", count_timeline_request)
    await chat.send("who am I")
    await chat.wait_answered(count=1)
    await chat.send("echo: where did the time go?")
    await chat.wait_answered(count=2)
    tier1, tier2 = chat.answers.nth(0), chat.answers.nth(1)
    # Nothing is fetched until the user asks.
    assert timeline_requests == []

    # Opened the moment the answer completes: if its timings are still being written, the page
    # waits for them.
    panel = await open_timeline(tier2)
    api = await assert_shows(page, tier2, panel)
    assert api["tier"] == 2
    await expect(panel.locator("tr.timeline-segment")).to_contain_text(
        ["Routing", "Dispatch", "Queue wait", "Preparation", "Model's first token", "Generation"],
    )
    await expect(chat.status).to_contain_text("Timeline loaded: total")
    await expect(chat.status).to_contain_text("queue wait")

    panel = await open_timeline(tier1)
    api = await assert_shows(page, tier1, panel)
    assert api["tier"] == 1
    await expect(panel).to_contain_text("Tool's first output")
    await expect(panel).not_to_contain_text("Model's first token")

    # Closing hides it; opening again shows the same figures without asking the server again.
    fetched = len(timeline_requests)
    await timeline_toggle(tier1).click()
    await expect(panel).to_be_hidden()
    await timeline_toggle(tier1).click()
    await expect(panel).to_be_visible()
    assert len(timeline_requests) == fetched

    # Phone width: the open timelines fit.
    await page.set_viewport_size({"width": 375, "height": 740})
    overflow = await page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    await tier2.scroll_into_view_if_needed()
    await screenshot(page, "timeline-phone")
    await page.set_viewport_size({"width": 1100, "height": 800})

    # After a refresh, the answers restored from history have their timelines too. Keyboard
    # only: from the message box back to the last answer's Timeline button.
    await page.reload()
    await chat.ready()
    await expect(chat.answers).to_have_count(2)
    tier2 = chat.answers.nth(1)
    toggle = timeline_toggle(tier2)
    await expect(chat.message_box).to_be_focused()
    for _ in range(6):
        await page.keyboard.press("Shift+Tab")
        if await toggle.evaluate("e => e === document.activeElement"):
            break
    await expect(toggle).to_be_focused()
    assert await toggle.evaluate("e => getComputedStyle(e).outlineStyle") != "none"
    await page.keyboard.press("Enter")
    await expect(toggle).to_have_attribute("aria-expanded", "true")
    panel = await loaded_panel(tier2)
    await assert_shows(page, tier2, panel)
    await expect(toggle).to_be_focused()
    await page.keyboard.press("Space")
    await expect(toggle).to_have_attribute("aria-expanded", "false")
    await expect(panel).to_be_hidden()
    await page.keyboard.press("Enter")
    await expect(panel).to_be_visible()

    for theme in ("light", "dark"):
        await chat.set_theme(theme)
        await assert_accessible(page, f"timeline open, {theme}")
        await screenshot(page, f"timeline-{theme}")

    # Signed out in another tab (the cookie is gone): the API answers 401.
    await page.context.clear_cookies()
    tier1 = chat.answers.nth(0)
    await timeline_toggle(tier1).click()
    panel = tier1.locator(".timeline-panel")
    await expect(panel).to_have_attribute("data-state", "signed_out")
    await expect(panel).to_contain_text("You are signed out.")
    await expect(panel.get_by_role("link", name="Sign in")).to_be_visible()
    await timeline_toggle(tier1).click()

    # Someone else signs in in another tab of the same browser: this page's cookie is now
    # theirs, and this answer's timeline is not theirs to see (the API answers 404). Reopening
    # after a failure asks again.
    colleague = await new_user(name="Someone Else")
    other_tab = await page.context.new_page()
    await sign_in(other_tab, colleague.email)
    await other_tab.close()
    await timeline_toggle(tier1).click()
    await expect(panel).to_have_attribute("data-state", "not_found")
    await expect(panel).to_contain_text("There is no timeline for this answer")
    await expect(chat.status).to_contain_text("There is no timeline for this answer")
    await assert_accessible(page, "timeline not found, dark")


async def test_when_history_does_not_answer_the_timeline_says_so_and_can_try_again(
    stack: Stack, open_chat: OpenChat, new_user: NewUser
) -> None:
    user = await new_user()
    chat = ChatPage(await open_chat(user))
    await chat.ready()
    stack.stop("history")
    try:
        # A Tier-1 answer needs no history; its timings wait in history's queue meanwhile.
        await chat.send("who am I")
        answer = await chat.wait_answered(count=1)
        await timeline_toggle(answer).click()
        panel = answer.locator(".timeline-panel")
        await expect(panel).to_contain_text("Loading the timeline")
        await expect(panel).to_have_attribute("data-state", "failed", timeout=ANSWER_TIMEOUT_MS)
        await expect(panel).to_contain_text(
            "The timeline could not be loaded. The chat history service did not answer in time."
        )
        await assert_accessible(chat.page, "timeline failed")
        await screenshot(chat.page, "timeline-failed")
    finally:
        stack.start("history")
        stack.wait_ready(("history",))
    await panel.get_by_role("button", name="Try again").click()
    await loaded_panel(answer)
    await assert_shows(chat.page, answer, panel)
