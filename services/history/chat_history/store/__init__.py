"""The chat tables, read and written by topic: one module per thing history keeps.

- `sessions`: a session opened, touched, ended when idle, served back with its messages;
- `turns`: the session's turn (one answer streams per session at a time);
- `messages`: user messages and answers, and the earlier messages an answer is sent as context;
- `tool_calls`, `llm_calls`: the audit of each tool call and model call;
- `budget`: an org's monthly budget and the holds of calls in flight;
- `timings`: the hop times of each answer, and its timeline.

Every statement is hand-written SQL run on the asyncpg connection (`chat_history.db`), inside a
transaction whose org is set (row-level security). Every write is keyed by an id that comes
with the event (message id, call id), so a redelivered event changes nothing twice. The status
lists in the SQL are those of `chat_contracts.base`, formatted in once (`sql_list`): constants
of the code, never input, which is what the `# nosec B608` after each such statement tells
bandit (and the per-file `S608` ignore tells ruff).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from chat_contracts.base import FINAL_CALL_STATUSES, FINAL_MESSAGE_STATUSES


def sql_list(values: Iterable[str]) -> str:
    """`('a', 'b')`: constants of the code (never input) for an `IN` in a statement's text."""
    quoted = ", ".join("'" + value.replace("'", "''") + "'" for value in values)
    return f"({quoted})"


# A message's final statuses, and a model call's.
FINAL_MESSAGE: Final = sql_list(FINAL_MESSAGE_STATUSES)
FINAL_CALL: Final = sql_list(FINAL_CALL_STATUSES)
