"""An org's monthly budget, and the holds of model calls in flight.

One hold per answer (`budget_holds` keyed by message id): a retried attempt holding again
replaces its answer's hold and renews its age. Spend is the month's model calls, except calls
still `streaming` under a live hold of their answer (the hold counts them already). The rules
live in one SQL function, `chat.hold_budget` (migration 0005): it locks the org's budget row
(created with the default budget on the org's first call), sums the month's spend and the live
holds, and holds the amount if it fits; so concurrent holds for one org are decided one after
another and can never together exceed the budget.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, NamedTuple
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chat_contracts.history import BudgetReply, ContextMessage, HoldPrice
from chat_history.db import execute, fetch_row, fetch_row_at_once
from chat_history.store.llm_calls import interrupt_streaming_calls
from chat_runtime.pricing import max_cost

_SET = """
    INSERT INTO chat.org_budgets (org_id, monthly_budget_usd) VALUES ($1, $2)
    ON CONFLICT (org_id) DO UPDATE SET
        monthly_budget_usd = excluded.monthly_budget_usd, updated_at = now()
"""


async def set_budget(conn: AsyncConnection, org_id: UUID, monthly_usd: Decimal) -> None:
    await execute(conn, _SET, org_id, monthly_usd)


_HOLD = "SELECT * FROM chat.hold_budget($1, $2, $3, $4, $5)"


class Hold(NamedTuple):
    """`amount_usd` held for answer `message_id` of `org_id` (an org without a budget gets
    `default_budget_usd`); the hold stops counting after `ttl_seconds`."""

    org_id: UUID
    message_id: UUID
    amount_usd: Decimal
    default_budget_usd: Decimal
    ttl_seconds: int

    def args(self) -> tuple[UUID, UUID, Decimal, Decimal, float]:
        return (
            self.org_id,
            self.message_id,
            self.amount_usd,
            self.default_budget_usd,
            float(self.ttl_seconds),
        )


def _reply(row: Any, amount: Decimal) -> BudgetReply:
    allowed: bool = row["allowed"]
    held: Decimal = row["held_usd"]
    return BudgetReply(
        allowed=allowed,
        budget_usd=row["budget_usd"],
        spent_usd=row["spent_usd"],
        reserved_usd=held + (amount if allowed else 0),
    )


async def reserve_budget(conn: AsyncConnection, hold: Hold) -> BudgetReply:
    """Hold the amount for the answer's call if the org's month still has room for it, in
    `conn`'s transaction (the org's budget row stays locked until it ends).

    Calls of the answer that are still `streaming` belong to an attempt whose worker is gone:
    they are marked `interrupted` first, and count as spent."""
    await interrupt_streaming_calls(conn, hold.message_id)
    return _reply(await fetch_row(conn, _HOLD, *hold.args()), hold.amount_usd)


async def hold_budget(engine: AsyncEngine, hold: Hold) -> BudgetReply:
    """`reserve_budget` as a transaction of its own, one statement, for an answer whose claim
    already interrupted its streaming calls (`StartAnswer`'s second step).

    The statement runs without BEGIN and COMMIT from here: the org's budget row is locked only
    while PostgreSQL runs it, not for the round trips in between (docs/decisions/0010)."""
    return _reply(await fetch_row_at_once(engine, _HOLD, *hold.args()), hold.amount_usd)


_RELEASE = "DELETE FROM chat.budget_holds WHERE message_id = $1"


async def release_hold(conn: AsyncConnection, message_id: UUID) -> None:
    await execute(conn, _RELEASE, message_id)


def hold_for(price: HoldPrice, context: list[ContextMessage]) -> Decimal:
    """The budget hold of an answer's call, with its earlier messages in the prompt."""
    prompt_chars = price.prompt_chars + sum(len(earlier.text) for earlier in context)
    return max_cost(price, prompt_chars, price.max_tokens)
