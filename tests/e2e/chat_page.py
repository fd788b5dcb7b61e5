"""The chat page as a user sees it: found by role and accessible name, as a screen reader would."""

from __future__ import annotations

from typing import Any

from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Locator, Page, expect

ANSWER_TIMEOUT_MS = 20_000
_axe = Axe()


class ChatPage:
    def __init__(self, page: Page) -> None:
        self.page = page
        self.log = page.get_by_role("log", name="Conversation")
        self.message_box = page.get_by_role("textbox", name="Message")
        self.send_button = page.get_by_role("button", name="Send", exact=True)
        self.stop_button = page.get_by_role("button", name="Stop", exact=True)
        self.connection = page.locator("#connection")
        self.status = page.locator("#announcer")

    async def ready(self) -> None:
        """Connected and joined: the connection badge says so and history (if any) is shown."""
        await expect(self.connection).to_have_attribute("data-state", "open")
        await expect(self.page.locator("#user-name")).not_to_be_empty()

    @property
    def user_messages(self) -> Locator:
        return self.log.get_by_role("article", name="Your message")

    @property
    def answers(self) -> Locator:
        return self.log.get_by_role("article", name="Assistant's answer")

    def last_answer(self) -> Locator:
        return self.answers.last

    async def send(self, text: str) -> None:
        await self.message_box.fill(text)
        await self.message_box.press("Enter")

    async def wait_answered(self, count: int | None = None, state: str = "done") -> Locator:
        """The last answer once it has finished (`done`, or `error`)."""
        if count is not None:
            await expect(self.answers).to_have_count(count, timeout=ANSWER_TIMEOUT_MS)
        answer = self.last_answer()
        await expect(answer).to_have_attribute("data-state", state, timeout=ANSWER_TIMEOUT_MS)
        return answer

    async def session_id(self) -> str | None:
        value: str | None = await self.page.evaluate(
            "() => localStorage.getItem('agentchat.session')"
        )
        return value

    async def set_theme(self, theme: str) -> None:
        toggle = self.page.get_by_role("button", name="Dark theme")
        pressed = await toggle.get_attribute("aria-pressed") == "true"
        if pressed != (theme == "dark"):
            await toggle.click()
        await expect(self.page.locator("html")).to_have_attribute("data-theme", theme)
        # Buttons fade to the new theme's colours: judge contrast once they have.
        await self.page.wait_for_function(
            "() => !document.getAnimations().some(a => a instanceof CSSTransition)"
        )


def _report(violations: list[dict[str, Any]]) -> str:
    lines = []
    for violation in violations:
        lines.append(f"- {violation['id']} ({violation['impact']}): {violation['help']}")
        for node in violation["nodes"][:5]:
            lines.append(f"    {node['target']}: {node.get('failureSummary', '')}")
    return "\n".join(lines)


async def assert_accessible(page: Page, state: str) -> None:
    """axe-core finds no violation on the page as it is now (every rule axe runs by default)."""
    results = await _axe.run(page)
    violations: list[dict[str, Any]] = results.response["violations"]
    assert violations == [], f"axe-core violations in state {state!r}:\n{_report(violations)}"
