"""Streams that survive, in real Chromium against the five services: Stop, resuming
after a dropped connection and after a refresh, an answer waiting for the one before it."""

from __future__ import annotations

import signal

import pytest
from playwright.async_api import expect

from chat_devtools.stack import Stack
from tests.e2e.browser import NewPage, NewUser, OpenChat, screenshot
from tests.e2e.chat_page import ANSWER_TIMEOUT_MS, ChatPage, assert_accessible
from tests.e2e.streams import record, recorded, start_long_answer, tapped_chat

pytestmark = pytest.mark.e2e

THEMES = ("light", "dark")


async def test_stop_ends_a_long_answer_in_every_tab_and_the_box_stays_usable(
    open_chat: OpenChat, new_user: NewUser
) -> None:
    user = await new_user()
    chat = ChatPage(await open_chat(user))
    await chat.ready()
    # A second tab of the same browser: same session, it sees the answer stream and stop.
    other = ChatPage(await chat.page.context.new_page())
    await other.page.goto("/")
    await other.ready()
    await expect(chat.stop_button).to_be_hidden()

    text, _ = await start_long_answer(chat, 400, 40)
    answer = chat.answers.first
    await expect(chat.stop_button).to_be_visible()
    await chat.stop_button.click()

    await expect(answer).to_have_attribute("data-state", "stopped", timeout=10_000)
    await expect(answer.locator(".stopped-mark")).to_have_text("Stopped")
    partial = (await answer.locator(".md").text_content() or "").strip()
    assert 0 < len(partial) < len(text), partial
    assert text.startswith(partial)
    await expect(chat.status).to_contain_text("Stopped. The answer so far: w0001")
    await expect(chat.stop_button).to_be_hidden()
    await expect(chat.message_box).to_be_focused()
    await screenshot(chat.page, "stopped")

    # The other tab shows the same stopped answer, from the same `complete`.
    other_answer = other.answers.first
    await expect(other_answer).to_have_attribute("data-state", "stopped")
    await expect(other_answer.locator(".stopped-mark")).to_have_text("Stopped")
    await expect(other_answer.locator(".md")).to_have_text(partial)
    await expect(other.stop_button).to_be_hidden()

    # The stop held: nothing more arrives. The message box is usable at once.
    await chat.page.wait_for_timeout(1000)
    await expect(answer.locator(".md")).to_have_text(partial)
    await chat.send("who am I")
    second = await chat.wait_answered(count=2)
    await expect(second.locator(".md")).to_contain_text(user.email)

    # History has it stopped too.
    await chat.page.reload()
    await chat.ready()
    await expect(chat.answers.first).to_have_attribute("data-state", "stopped")
    await expect(chat.answers.first.locator(".stopped-mark")).to_have_text("Stopped")
    await expect(chat.answers.first.locator(".md")).to_have_text(partial)


async def test_a_dropped_connection_mid_answer_resumes_with_nothing_doubled_or_missing(
    new_page: NewPage, new_user: NewUser
) -> None:
    chat, tap = await tapped_chat(await new_page(), (await new_user()).email)
    text, before = await start_long_answer(chat, 400, 150)
    answer = chat.answers.first
    bubble = await record(answer)
    await tap.drop(1012, "test: the gateway restarts")

    seen = await recorded(bubble, text)
    # The partial text was kept (nothing shown went away), and the stream went on after the
    # reconnection, continuing it: every text seen is a prefix of the answer, none shorter than
    # the one before, and some seen while it still streamed are longer than at the drop.
    lengths = [len(observation.text) for observation in seen]
    assert lengths == sorted(lengths), lengths
    assert lengths[0] >= len(before.text)
    resumed = [o for o in seen if o.state == "streaming" and len(o.text) > len(before.text) + 20]
    assert resumed, "the answer did not stream again after the reconnection"
    await expect(answer.locator(".md")).to_have_text(text)
    await expect(chat.answers).to_have_count(1)

    # The page load joined without `after`; the reconnection asked for the rest of the answer.
    joins = tap.frames("join")
    assert len(joins) == 2, joins
    assert "after" not in joins[0]
    after = joins[1]["after"]
    assert after["message_id"] == await answer.get_attribute("data-message-id")
    assert after["seq"] > 0
    assert after["attempt"] == 1


async def test_an_answer_whose_worker_died_starts_again_and_says_so(
    stack: Stack, open_chat: OpenChat, new_user: NewUser
) -> None:
    chat = ChatPage(await open_chat(await new_user()))
    await chat.ready()
    text, _ = await start_long_answer(chat, 250, 60)
    answer = chat.answers.first
    bubble = await record(answer)

    stack.stop("llm-worker", signal.SIGKILL)
    stack.start("llm-worker")
    stack.wait_ready(("llm-worker",))
    # RabbitMQ delivers the request again, to the new worker: attempt 2 starts from scratch.
    note = answer.locator(".answer-note")
    await expect(note).to_contain_text("interrupted", timeout=ANSWER_TIMEOUT_MS)
    await expect(chat.status).to_contain_text("interrupted")
    await screenshot(chat.page, "retrying")
    seen = await recorded(bubble, text)
    # What attempt 1 showed went, and the new attempt streamed from the start.
    restart = next(i for i, o in enumerate(seen) if i > 0 and o.text == "")
    assert any(o.state == "streaming" and o.text for o in seen[restart:]), seen[restart:]
    await expect(answer.locator(".md")).to_have_text(text)
    await expect(note).to_have_count(0)


async def test_a_part_nobody_can_replay_is_said_and_the_whole_answer_comes_at_the_end(
    stack: Stack, new_page: NewPage, new_user: NewUser
) -> None:
    chat, tap = await tapped_chat(await new_page(), (await new_user()).email)
    text, _ = await start_long_answer(chat, 250, 60)
    answer = chat.answers.first
    # The worker holding the answer (the only source of a replay) dies, then the connection
    # drops: the re-join's replay finds nobody, so the page is told its part cannot continue.
    stack.stop("llm-worker", signal.SIGKILL)
    await tap.drop(1012, "test: the gateway restarts")
    note = answer.locator(".answer-note")
    await expect(note).to_have_text(
        "Reconnected — part of this answer could not be replayed; the full answer appears when"
        " it finishes.",
        timeout=ANSWER_TIMEOUT_MS,
    )
    await expect(answer.locator(".md")).to_have_text("")
    await expect(chat.status).to_contain_text("could not be replayed")
    await screenshot(chat.page, "resync")

    stack.start("llm-worker")
    stack.wait_ready(("llm-worker",))
    await expect(answer).to_have_attribute("data-state", "done", timeout=ANSWER_TIMEOUT_MS * 2)
    await expect(answer.locator(".md")).to_have_text(text)
    await expect(note).to_have_count(0)


async def test_pings_are_sent_and_a_silent_connection_is_replaced(
    new_page: NewPage, new_user: NewUser
) -> None:
    page = await new_page()
    await page.clock.install()  # the page's timers, run ahead by the test
    chat, tap = await tapped_chat(page, (await new_user()).email)

    # The server's frames (heartbeats included) stop reaching the page; the socket stays open.
    tap.mute()
    await page.clock.run_for(16_000)
    assert tap.frames("ping"), tap.sent  # every 15 s
    await page.clock.run_for(17_000)
    await expect(chat.connection).to_have_attribute("data-state", "open")
    assert len(tap.frames("join")) == 1
    # 35 s without a word: the page gives the socket up and reconnects (and re-joins).
    await page.clock.run_for(3_000)
    await expect(chat.connection).not_to_have_attribute("data-state", "open")
    await page.clock.run_for(1_000)  # the first retry's backoff (at most 0.5 s)
    await chat.ready()
    await expect(chat.page.locator("#banner")).to_be_hidden()
    assert len(tap.connections) == 2
    assert len(tap.frames("join")) == 2, tap.sent


async def test_a_refresh_mid_answer_replays_it_from_the_start(
    new_page: NewPage, new_user: NewUser
) -> None:
    chat, tap = await tapped_chat(await new_page(), (await new_user()).email)
    text, _ = await start_long_answer(chat, 300, 100)
    await chat.page.reload()
    await chat.ready()

    answer = chat.answers.first
    seen = await recorded(await record(answer), text)
    # The pending answer streamed again from its start, not only rendered once complete.
    assert any(o.state == "streaming" and o.text for o in seen), seen
    await expect(answer.locator(".md")).to_have_text(text)
    joins = tap.frames("join")
    assert len(joins) == 2 and all("after" not in join for join in joins), joins


@pytest.mark.parametrize("theme", THEMES)
async def test_a_message_sent_while_answering_waits_and_escape_stops_the_first(
    open_chat: OpenChat, new_user: NewUser, theme: str
) -> None:
    user = await new_user()
    chat = ChatPage(await open_chat(user, color_scheme=theme))
    await chat.ready()
    await start_long_answer(chat, 400, 20)
    first = chat.answers.first

    await chat.send("echo: the second answer")
    second = chat.answers.nth(1)
    await expect(second.locator(".answer-note")).to_have_text(
        "Waiting for the previous answer to finish…", timeout=10_000
    )
    await expect(chat.status).to_contain_text("Waiting for the previous answer to finish")
    await expect(chat.stop_button).to_be_visible()
    await assert_accessible(chat.page, f"streaming with one waiting, {theme}")
    await screenshot(chat.page, f"queued-{theme}")

    # Escape in the message box stops the answer being written; the waiting one then runs.
    await expect(chat.message_box).to_be_focused()
    await chat.message_box.press("Escape")
    await expect(first).to_have_attribute("data-state", "stopped", timeout=10_000)
    await expect(second).to_have_attribute("data-state", "done", timeout=20_000)
    await expect(second.locator(".md")).to_have_text("the second answer")
    await expect(second.locator(".answer-note")).to_have_count(0)
    await expect(chat.stop_button).to_be_hidden()
    await assert_accessible(chat.page, f"stopped, {theme}")
    await screenshot(chat.page, f"stopped-{theme}")
