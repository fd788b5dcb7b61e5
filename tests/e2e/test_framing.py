"""The security headers in Chromium: another site cannot frame the chat, and the page works under
its header-only Content-Security-Policy (docs/security.md, "Response headers")."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from playwright.async_api import ConsoleMessage, Frame, Page, Request, expect
from starlette.applications import Starlette
from starlette.requests import Request as HttpRequest
from starlette.responses import HTMLResponse
from starlette.routing import Route

from chat_devtools.stack import Stack, free_port
from tests.e2e.browser import NewUser, OpenChat
from tests.e2e.chat_page import ChatPage
from tests.support.http_server import serving

pytestmark = pytest.mark.e2e


def _framing_site(gateway_url: str) -> Starlette:
    """Another site: a page that frames whatever `?src=` names, and a harmless page of its own."""

    async def framer(request: HttpRequest) -> HTMLResponse:
        src = request.query_params["src"].replace('"', "")
        return HTMLResponse(
            f'<!doctype html><title>Not the chat</title><iframe id="victim" src="{src}"'
            ' width="800" height="600"></iframe>'
        )

    async def own(request: HttpRequest) -> HTMLResponse:
        return HTMLResponse("<!doctype html><title>Framed</title><p id='inside'>inside</p>")

    return Starlette(routes=[Route("/", framer), Route("/own", own)])


@pytest.fixture(scope="module")
def other_site(stack: Stack) -> Iterator[str]:
    port = free_port()
    with serving(_framing_site(stack.gateway_url), port, "the framing site"):
        # `localhost` rather than 127.0.0.1: another site, not only another origin.
        yield f"http://localhost:{port}"


async def _victim(page: Page) -> Frame:
    frame = await (await page.wait_for_selector("#victim")).content_frame()
    assert frame is not None
    await frame.wait_for_load_state()
    return frame


async def test_a_page_on_another_origin_cannot_frame_the_chat(
    open_chat: OpenChat, new_user: NewUser, stack: Stack, other_site: str
) -> None:
    # Signed in (the cookie is in this browser), the way a clickjacking victim would be.
    page = await open_chat(await new_user())
    await ChatPage(page).ready()

    # The control: the same page frames a page without our headers, and it shows.
    await page.goto(f"{other_site}/?src={other_site}/own")
    await expect((await _victim(page)).locator("#inside")).to_have_text("inside")

    for path in ("/", "/login"):  # `/` sends the frame on to /login: no cookie goes cross-site
        async with (
            page.expect_event("requestfailed", predicate=_refused(stack.gateway_url)),
            page.expect_console_message(predicate=_reported),
        ):
            await page.goto(f"{other_site}/?src={stack.gateway_url}{path}")
        frame = await _victim(page)
        # Chromium shows its error page in the frame instead: nothing of ours is in it.
        assert frame.url.startswith("chrome-error://"), frame.url
        assert await frame.locator("#message, #email").count() == 0


def _refused(gateway_url: str) -> Callable[[Request], bool]:
    def refused(request: Request) -> bool:
        return request.url.startswith(gateway_url) and (
            request.failure == "net::ERR_BLOCKED_BY_RESPONSE"
        )

    return refused


def _reported(message: ConsoleMessage) -> bool:
    return re.search(r"violates .*\"frame-ancestors 'none'\"", message.text) is not None


async def test_the_page_works_under_the_header_policy_and_it_is_enforced(
    new_user: NewUser, open_chat: OpenChat
) -> None:
    user = await new_user(name="Ada Lovelace")
    page = await open_chat(user)
    console: list[ConsoleMessage] = []
    page.on("console", lambda message: console.append(message))
    await page.reload()
    chat = ChatPage(page)
    await chat.ready()
    # The policy is the response header alone: no <meta> copy in the page.
    assert await page.locator("meta[http-equiv='Content-Security-Policy' i]").count() == 0
    response = await page.request.get("/")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]

    # connect-src 'self' lets the page's own WebSocket through: a whole answer arrives.
    await chat.send("who am I")
    answer = await chat.wait_answered(count=1)
    await expect(answer.locator(".md")).to_contain_text("Ada Lovelace")

    # An inline script, as injected markup would carry, is refused and reported.
    outcome = await page.evaluate(
        """() => new Promise((resolve) => {
            document.addEventListener("securitypolicyviolation",
                (event) => resolve({
                    ran: window.__injected === true, directive: event.effectiveDirective,
                }),
                {once: true});
            const script = document.createElement("script");
            script.textContent = "window.__injected = true";
            document.body.append(script);
        })"""
    )
    assert outcome == {"ran": False, "directive": "script-src-elem"}
    # Every feature of the Permissions-Policy is one this Chromium knows.
    assert not [m.text for m in console if "Permissions-Policy" in m.text]
