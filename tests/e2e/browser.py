"""What the browser tests share besides fixtures: Chromium's flags, the scripted pace, signing in
through the form, screenshots."""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from playwright.async_api import Page, expect

from chat_contracts.base import UserRef
from tests.support.paths import ARTIFACTS

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


NewUser = Callable[..., Awaitable[UserRef]]
OpenChat = Callable[..., Awaitable[Page]]
NewPage = Callable[..., Awaitable[Page]]

PASSWORD = "correct horse battery staple"


async def sign_in(page: Page, email: str, password: str = PASSWORD) -> None:
    """The real sign-in: `/` sends a signed-out browser to the form, the form back to `/`."""
    await page.goto("/")
    await expect(page).to_have_url(re.compile(r"/login$"))
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(re.compile(r"/$"))


async def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=path)
    return path
