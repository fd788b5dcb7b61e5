"""The chat page in real Chromium against the five services, with the scripted model."""

from __future__ import annotations

import asyncio
import re
from decimal import Decimal
from itertools import pairwise

import pytest
from playwright.async_api import Route, WebSocket, expect

from chat_devtools.stack import Stack
from tests.e2e.browser import PASSWORD, NewPage, NewUser, OpenChat, screenshot
from tests.e2e.chat_page import ChatPage

pytestmark = pytest.mark.e2e


async def test_sign_in_with_a_wrong_password_then_the_right_one_then_sign_out(
    new_page: NewPage, new_user: NewUser
) -> None:
    user = await new_user(name="Ada Lovelace")
    page = await new_page()
    await page.goto("/")
    await expect(page).to_have_url(re.compile(r"/login$"))
    email, password = page.get_by_label("Email"), page.get_by_label("Password")
    error = page.get_by_role("alert")
    await expect(error).to_be_hidden()

    for address, secret in ((user.email, "wrong password"), ("nobody@example.com", PASSWORD)):
        await email.fill(address)
        await password.fill(secret)
        await page.get_by_role("button", name="Sign in").click()
        # One generic message, whether the email exists or not; the password is cleared.
        await expect(error).to_have_text("Incorrect email or password.")
        await expect(password).to_have_value("")
        await expect(password).to_be_focused()
        await expect(page).to_have_url(re.compile(r"/login$"))
    await screenshot(page, "sign-in-error")

    await email.fill(user.email)
    await password.fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    chat = ChatPage(page)
    await chat.ready()
    await expect(page.locator("#user-name")).to_have_text("Ada Lovelace")
    await chat.send("who am I")
    await chat.wait_answered(count=1)
    assert await chat.session_id() is not None

    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(re.compile(r"/login$"))
    assert await chat.session_id() is None
    await page.goto("/")
    await expect(page).to_have_url(re.compile(r"/login$"))


async def test_who_am_i_shows_a_tool_card_and_an_answer_naming_the_user(
    open_chat: OpenChat, new_user: NewUser
) -> None:
    user = await new_user(name="Grace Hopper")
    chat = ChatPage(await open_chat(user))
    await chat.ready()
    await expect(chat.message_box).to_be_focused()

    await chat.message_box.fill("who am I")
    await chat.message_box.press("Enter")

    # The user's bubble is there at once, the box is empty again.
    await expect(chat.user_messages).to_have_count(1)
    await expect(chat.user_messages.first).to_contain_text("who am I")
    await expect(chat.message_box).to_have_value("")

    answer = await chat.wait_answered(count=1)
    toggle = answer.get_by_role("button", name="who_am_i")
    await expect(toggle).to_have_attribute("aria-expanded", "false")
    await expect(toggle).to_contain_text("Checked your user info")
    await expect(answer.locator(".md")).to_contain_text("Grace Hopper")
    await expect(answer.locator(".md")).to_contain_text(user.email)
    # Who answered: the tool, no AI model.
    await expect(answer.locator(".answerer")).to_have_text("The who_am_i tool, no AI model")

    details = answer.locator(".tool-details")
    await expect(details).not_to_be_visible()
    await toggle.click()
    await expect(toggle).to_have_attribute("aria-expanded", "true")
    await expect(details).to_be_visible()
    await expect(details).to_contain_text("Input")
    await expect(details).to_contain_text("{}")
    await expect(details).to_contain_text(f'"email": "{user.email}"')
    await expect(details).to_contain_text(str(user.org_id))
    await chat.page.wait_for_timeout(300)  # the opening animation
    await screenshot(chat.page, "who-am-i-card-expanded")


async def test_tool_card_animates_unless_the_user_prefers_reduced_motion(
    open_chat: OpenChat, new_user: NewUser
) -> None:
    user = await new_user()
    chat = ChatPage(await open_chat(user))
    await chat.ready()
    await chat.send("who am I")
    details = (await chat.wait_answered(count=1)).locator(".tool-details")
    duration = "e => getComputedStyle(e).transitionDuration"
    assert (await details.evaluate(duration)).startswith("0.2s")
    await chat.page.emulate_media(reduced_motion="reduce")
    assert set((await details.evaluate(duration)).split(", ")) == {"0s"}


async def test_an_llm_answer_streams_into_its_bubble_and_renders_markdown(
    open_chat: OpenChat, new_user: NewUser
) -> None:
    user = await new_user()
    chat = ChatPage(await open_chat(user))
    await chat.ready()
    await chat.page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    await chat.send("who am I")
    await chat.wait_answered(count=1)
    first_answer_blocks = await chat.answers.first.locator(".md > *").element_handles()

    await chat.send("Summarise what this platform does")
    answer = chat.answers.nth(1)
    # Loading dots until the first token.
    await expect(answer.locator(".typing-indicator .loading-dots")).to_be_visible()
    await expect(answer).to_have_attribute("data-state", "streaming", timeout=10_000)
    lengths: list[int] = []
    # Once a later block (the quote) has started, the first paragraph is final.
    await expect(answer.locator(".md > blockquote")).to_be_attached()
    first_block = await answer.locator(".md > *").first.element_handle()

    while await answer.get_attribute("data-state") == "streaming":
        lengths.append(len(await answer.locator(".md").inner_text()))
        await chat.page.wait_for_timeout(150)
    assert len(set(lengths)) >= 4 and lengths[-1] > lengths[0], f"no visible growth: {lengths}"
    # It only grows, except by the few marker characters that vanish when a syntax closes
    # (a backtick shown until its closing one arrives, then rendered as code).
    for before, after in pairwise(lengths):
        assert after >= before - 4, f"the text shrank while streaming: {lengths}"
    await expect(answer).to_have_attribute("data-state", "done")

    # Only the streaming message's changed blocks were re-rendered: the earlier answer's nodes
    # and this answer's finished first paragraph are the very same DOM nodes as before.
    assert first_block is not None
    assert await first_block.evaluate("e => e.isConnected")
    for node in first_answer_blocks:
        assert await node.evaluate("e => e.isConnected")

    # Markdown: a list, a table, highlighted code with a copy button; nothing raw.
    markdown = answer.locator(".md")
    await expect(markdown.locator("ol > li")).to_have_count(3)
    await expect(markdown.locator("table th").first).to_have_text("Tier")
    await expect(markdown.locator("table tbody tr")).to_have_count(2)
    await expect(markdown.locator("strong").first).to_have_text("offline scripted model")
    code = markdown.locator("pre code")
    await expect(code).to_have_text('print("hello from the scripted model")')
    await expect(code.locator(".hljs-string")).to_have_text('"hello from the scripted model"')
    assert "**" not in await markdown.inner_text() and "|---" not in await markdown.inner_text()

    copy = markdown.get_by_role("button", name="Copy code")
    await copy.click()
    await expect(markdown.get_by_role("button", name="Copied")).to_be_visible()
    # Pasted as a user would: the page's Permissions-Policy forbids scripts to read the clipboard.
    await chat.message_box.focus()
    await chat.page.keyboard.press("Control+V")
    await expect(chat.message_box).to_have_value(
        re.compile(r'^print\("hello from the scripted model"\)\s*$')
    )
    await chat.message_box.fill("")

    # Which model answered: the offline scripted one, never presented as Claude.
    answerer = answer.locator(".answerer")
    await expect(answerer).to_have_text("Offline scripted model (scripted-offline-v1), not an AI")
    await expect(answerer).not_to_contain_text("Claude")
    await chat.page.set_viewport_size({"width": 1100, "height": 1280})
    await screenshot(chat.page, "markdown-answer")


async def test_refresh_mid_answer_restores_the_same_session_and_its_history(
    open_chat: OpenChat, new_user: NewUser
) -> None:
    user = await new_user()
    chat = ChatPage(await open_chat(user))
    await chat.ready()
    await chat.send("who am I")
    await chat.wait_answered(count=1)
    await chat.send("Tell me something long")
    await expect(chat.answers.nth(1)).to_have_attribute("data-state", "streaming", timeout=10_000)
    session = await chat.session_id()
    assert session is not None

    await chat.page.reload()
    await chat.ready()
    assert await chat.session_id() == session
    await expect(chat.user_messages).to_have_count(2)
    await expect(chat.user_messages.nth(0)).to_contain_text("who am I")
    await expect(chat.user_messages.nth(1)).to_contain_text("Tell me something long")
    await expect(chat.answers.first.locator(".md")).to_contain_text(user.email)
    await expect(chat.answers.first.get_by_role("button", name="who_am_i")).to_be_visible()
    # The answer that was streaming during the refresh completes in place.
    answer = await chat.wait_answered(count=2)
    await expect(answer.locator(".md")).to_contain_text("Tell me something long")
    await expect(answer.locator(".answerer")).to_contain_text("scripted-offline-v1")

    # And the conversation goes on in the same session.
    await chat.send("whoami")
    await chat.wait_answered(count=3)
    assert await chat.session_id() == session


async def test_model_html_and_scripts_render_inert(open_chat: OpenChat, new_user: NewUser) -> None:
    user = await new_user()
    chat = ChatPage(await open_chat(user))
    dialogs: list[str] = []
    chat.page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    await chat.ready()
    payload = (
        "echo: <img src=x onerror=\"window.__xss='img'\"> <script>window.__xss='script'</script>"
        " [click me](javascript:window.__xss='link') ![pixel](https://example.com/t.png)"
        ' <a href="javascript:alert(1)">bad link</a> **still markdown**'
    )
    await chat.send(payload)
    answer = await chat.wait_answered(count=1)
    markdown = answer.locator(".md")

    await expect(markdown.locator("strong")).to_have_text("still markdown")
    # The raw HTML is shown as text, not interpreted.
    await expect(markdown).to_contain_text("<img src=x onerror=")
    await expect(markdown).to_contain_text("<script>window.__xss='script'</script>")
    assert await chat.log.locator("img, script, iframe, object").count() == 0
    for href in await markdown.locator("a").evaluate_all("links => links.map(a => a.href)"):
        assert not href.lower().startswith("javascript:"), href
    # The Markdown image became a link; nothing was fetched from its host.
    await expect(markdown.get_by_role("link", name="Image: pixel")).to_be_visible()

    await markdown.get_by_text("click me").click()
    await chat.page.wait_for_timeout(300)
    assert await chat.page.evaluate("() => window.__xss") is None
    assert dialogs == []
    # The user's own bubble shows what they typed, as text.
    await expect(chat.user_messages.first).to_contain_text("<script>window.__xss='script'</script>")
    await screenshot(chat.page, "xss-inert")


async def test_budget_zero_shows_a_friendly_error_and_tier_one_still_works(
    open_chat: OpenChat, new_user: NewUser
) -> None:
    user = await new_user(budget_usd=Decimal(0))
    chat = ChatPage(await open_chat(user))
    await chat.ready()
    await chat.send("Summarise what this platform does")
    answer = await chat.wait_answered(count=1, state="error")
    alert = answer.locator(".answer-error")
    await expect(alert).to_contain_text("Your organisation's AI budget is used up")
    await expect(alert).to_contain_text("who am I")
    await expect(alert).to_contain_text("administrator")
    await expect(chat.page.locator("#alerter")).to_contain_text("AI budget is used up")
    await screenshot(chat.page, "budget-exceeded")

    # The suggested command works without the AI model.
    await alert.get_by_role("button", name="Ask “who am I”").click()
    second = await chat.wait_answered(count=2)
    await expect(second.locator(".md")).to_contain_text(user.email)


async def test_keyboard_only_the_whole_flow(new_page: NewPage, new_user: NewUser) -> None:
    user = await new_user()
    page = await new_page()
    chat = ChatPage(page)
    keyboard = page.keyboard

    # Signing in: the email field has the focus, Tab to the password, Enter submits.
    await page.goto("/")
    await expect(page.get_by_label("Email")).to_be_focused()
    await keyboard.type(user.email)
    await keyboard.press("Tab")
    await expect(page.get_by_label("Password")).to_be_focused()
    await keyboard.type(PASSWORD)
    await keyboard.press("Enter")
    await chat.ready()
    await expect(chat.message_box).to_be_focused()

    # Shift+Enter adds a line; Enter sends.
    await keyboard.type("who am I")
    await keyboard.press("Shift+Enter")
    await expect(chat.message_box).to_have_value("who am I\n")
    await keyboard.press("Backspace")
    await keyboard.press("Enter")
    answer = await chat.wait_answered(count=1)
    await expect(chat.message_box).to_be_focused()

    # Back from the message box into the conversation, to the tool card's toggle.
    toggle = answer.get_by_role("button", name="who_am_i")
    for _ in range(8):
        await keyboard.press("Shift+Tab")
        if await toggle.evaluate("e => e === document.activeElement"):
            break
    await expect(toggle).to_be_focused()
    outline = await toggle.evaluate("e => getComputedStyle(e).outlineStyle")
    assert outline != "none", "the focused toggle shows no focus ring"
    await keyboard.press("Enter")
    await expect(toggle).to_have_attribute("aria-expanded", "true")
    await keyboard.press("Space")
    await expect(toggle).to_have_attribute("aria-expanded", "false")

    # Forward again to the message box, and send with the Send button reached by Tab.
    for _ in range(8):
        await keyboard.press("Tab")
        if await chat.message_box.evaluate("e => e === document.activeElement"):
            break
    await expect(chat.message_box).to_be_focused()
    await keyboard.type("whoami")
    await keyboard.press("Tab")
    await expect(chat.send_button).to_be_focused()
    await keyboard.press("Enter")
    await chat.wait_answered(count=2)

    # The header's controls are reachable too: the theme toggle works from the keyboard.
    toggle_theme = page.get_by_role("button", name="Dark theme")
    await toggle_theme.focus()
    await keyboard.press("Enter")
    await expect(page.locator("html")).to_have_attribute("data-theme", "dark")


async def test_phone_width_has_no_horizontal_scrolling(
    open_chat: OpenChat, new_user: NewUser
) -> None:
    user = await new_user()
    chat = ChatPage(await open_chat(user, viewport={"width": 375, "height": 740}))
    await chat.ready()
    await chat.send("Summarise what this platform does")
    await chat.wait_answered(count=1)
    overflow = await chat.page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    await expect(chat.send_button).to_be_in_viewport()
    await screenshot(chat.page, "phone-width")


async def test_network_loss_reconnects_to_the_same_session(
    stack: Stack, open_chat: OpenChat, new_user: NewUser
) -> None:
    user = await new_user()
    chat = ChatPage(await open_chat(user))
    await chat.ready()
    await chat.send("who am I")
    await chat.wait_answered(count=1)
    session = await chat.session_id()

    stack.stop("gateway")
    await expect(chat.page.locator("#banner")).to_be_visible()
    await expect(chat.page.locator("#banner")).to_contain_text("Reconnecting")
    await expect(chat.connection).to_have_text("Reconnecting…")
    # What the user sends meanwhile waits for the connection; nothing is lost.
    await chat.send("whoami")
    await expect(chat.user_messages.nth(1)).to_contain_text("Waiting for the connection")
    await screenshot(chat.page, "reconnecting")

    # "Reconnect now" tries at once, long before the scheduled retry (and fails again while the
    # gateway is down). Clicked when the scheduled retry is at least 1.5 s away.
    banner = chat.page.locator("#banner")
    while True:
        attempt = int(await banner.get_attribute("data-attempt") or 0)
        retry_at = int(await banner.get_attribute("data-retry-at") or 0)
        if retry_at - await chat.page.evaluate("() => Date.now()") > 1500:
            break
        await chat.page.wait_for_timeout(200)
    await chat.page.get_by_role("button", name="Reconnect now").click()
    await expect(banner).to_have_attribute("data-attempt", str(attempt + 1), timeout=1000)
    assert await chat.page.evaluate("() => Date.now()") < retry_at

    stack.start("gateway")
    stack.wait_ready(("gateway",))
    # The browser saying it is online again also skips the wait.
    await chat.page.evaluate("() => window.dispatchEvent(new Event('online'))")
    await expect(chat.connection).to_have_attribute("data-state", "open", timeout=20_000)
    await expect(chat.page.locator("#banner")).to_be_hidden()
    assert await chat.session_id() == session
    answer = await chat.wait_answered(count=2)
    await expect(answer.locator(".md")).to_contain_text(user.email)
    await expect(chat.user_messages).to_have_count(2)


async def test_reconnect_now_during_the_sign_in_check_leaves_one_socket(
    stack: Stack, open_chat: OpenChat, new_user: NewUser
) -> None:
    """A handshake that fails makes the page ask `/api/me` whether the user is still signed in
    before it schedules the next try. The browser coming back online meanwhile connects at once;
    the check's answer must then not schedule a second connection (two sockets joined to one
    session show every answer twice: seen in CI)."""
    user = await new_user()
    chat = ChatPage(await open_chat(user))
    await chat.ready()
    await chat.send("who am I")
    await chat.wait_answered(count=1)
    sockets: list[WebSocket] = []
    chat.page.on("websocket", lambda ws: sockets.append(ws))

    held: list[Route] = []
    checking = asyncio.Event()

    async def hold(route: Route) -> None:
        if checking.is_set():
            await route.continue_()
            return
        held.append(route)
        checking.set()

    await chat.page.route("**/api/me", hold)
    stack.stop("gateway")
    await asyncio.wait_for(checking.wait(), timeout=30)  # a failed handshake's sign-in check
    stack.start("gateway")
    stack.wait_ready(("gateway",))
    await chat.page.evaluate("() => window.dispatchEvent(new Event('online'))")
    await expect(chat.connection).to_have_attribute("data-state", "open", timeout=20_000)

    async with chat.page.expect_response("**/api/me") as checked:
        await held[0].continue_()
    assert (await checked.value).ok
    await chat.page.evaluate("() => new Promise(resolve => setTimeout(resolve, 100))")
    await expect(chat.connection).to_have_attribute("data-state", "open")
    await expect(chat.page.locator("#banner")).to_be_hidden()

    await chat.send("whoami")
    await chat.wait_answered(count=2)
    await expect(chat.answers).to_have_count(2)
    assert [ws.is_closed() for ws in sockets] == [True] * (len(sockets) - 1) + [False]
    assert len(held) == 1
