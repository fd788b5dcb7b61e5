"""What the LLM worker tells a user in words: every message of its events, in one place."""

from __future__ import annotations

BUDGET_MESSAGE = (
    "Your organisation's monthly AI budget is used up, so I can't ask the AI model right now. "
    "Commands such as “who am I” still work. Ask your organisation's administrator to raise "
    "the budget."
)
UNAVAILABLE_MESSAGE = "The chat history service did not answer in time. Try again in a moment."
RETRYING_MESSAGE = "The answer was interrupted; starting again."
BUSY_MESSAGE = (
    "An answer is still being written in this chat. Wait for it or stop it, then send your "
    "message again."
)
FAILED_MESSAGE = (
    "This answer failed several times in a row, so it was set aside. Try sending your message "
    "again; if it keeps failing, tell your administrator."
)
