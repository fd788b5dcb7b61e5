"""Whether an answer's model call may go ahead: history's budget hold, or, while history is
unavailable, the org's outage allowance on this worker."""

from __future__ import annotations

import logging
from decimal import Decimal
from uuid import UUID

from chat_contracts.codes import ErrorCode
from chat_contracts.history import BudgetReply
from chat_llm_worker.generations import Generation
from chat_llm_worker.messages import BUDGET_MESSAGE, UNAVAILABLE_MESSAGE
from chat_llm_worker.outcomes import AnswerEvents
from chat_llm_worker.providers import ProviderRequest
from chat_llm_worker.settings import Price
from chat_runtime.pricing import max_cost

log = logging.getLogger("chat_llm_worker")


class OutageAllowance:
    """What each org may hold for Tier-2 answers on this worker while history is down (the
    budget cannot be checked). It starts again at the next outage."""

    def __init__(self, per_org_usd: Decimal) -> None:
        self._per_org = per_org_usd
        self._held: dict[UUID, Decimal] = {}

    def take(self, org_id: UUID, amount_usd: Decimal) -> bool:
        held = self._held.get(org_id, Decimal(0))
        # No allowance refuses every answer, free ones too: the budget cannot be checked.
        if self._per_org <= 0 or held + amount_usd > self._per_org:
            return False
        self._held[org_id] = held + amount_usd
        return True

    def reset(self) -> None:
        self._held.clear()


class BudgetGate:
    def __init__(self, price: Price, outage: OutageAllowance, events: AnswerEvents) -> None:
        self._price = price
        self._outage = outage
        self._events = events

    async def allows(
        self, gen: Generation, prompt: ProviderRequest, budget: BudgetReply | None
    ) -> bool:
        """Whether the call may go ahead: history's hold (`budget`), or, while history is
        unavailable (None), the org's outage allowance. If not, the answer's error is
        published."""
        org_id = gen.request.user.org_id
        if budget is None:
            hold = max_cost(self._price, prompt.prompt_chars(), prompt.max_tokens)
            if self._outage.take(org_id, hold):
                log.warning("history unavailable: answering on the outage allowance")
                return True
            await self._events.fail(gen, ErrorCode.UNAVAILABLE, UNAVAILABLE_MESSAGE, retryable=True)
            return False
        self._outage.reset()
        if not budget.allowed:
            log.info("budget exceeded", extra={"org_id": str(org_id)})
            await self._events.fail(gen, ErrorCode.BUDGET_EXCEEDED, BUDGET_MESSAGE)
            return False
        return True
