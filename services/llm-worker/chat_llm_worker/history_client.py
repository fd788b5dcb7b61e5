"""Questions the worker asks the history service: context of a session, and budget holds."""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID

from chat_shared.contracts import (
    BudgetReply,
    ContextReply,
    ContextTurn,
    GetContext,
    LlmRequest,
    ReserveBudget,
)
from chat_shared.rpc import RpcClient
from chat_shared.topology import Topology


class HistoryClient:
    def __init__(self, rpc: RpcClient, topology: Topology, timeout: float) -> None:
        self._rpc = rpc
        self._queue = topology.history_rpc.name
        self._timeout = timeout

    async def _ask(self, request: GetContext | ReserveBudget) -> bytes:
        return await self._rpc.ask(
            self._queue, request.model_dump_json().encode(), expires_in=self._timeout
        )

    async def context(self, request: LlmRequest, limit: int) -> list[ContextTurn]:
        body = await self._ask(
            GetContext(
                org_id=request.user.org_id,
                user_id=request.user.user_id,
                session_id=request.session_id,
                exclude_message_id=request.user_message_id,
                limit=limit,
            )
        )
        return ContextReply.model_validate_json(body).turns

    async def reserve(self, org_id: UUID, message_id: UUID, amount_usd: Decimal) -> BudgetReply:
        body = await self._ask(
            ReserveBudget(org_id=org_id, message_id=message_id, amount_usd=amount_usd)
        )
        return BudgetReply.model_validate_json(body)
