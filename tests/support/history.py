"""Helpers of the history service's own tests (they use its store directly)."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from chat_contracts.base import UserRef
from chat_history.store import sessions


async def open_a_session(engine: AsyncEngine, user: UserRef) -> UUID:
    """A new session of `user` (as the owner: no org context needed)."""
    async with engine.begin() as conn:
        snapshot = await sessions.open_session(conn, user.org_id, user.user_id, None, 10)
    assert snapshot.session_id is not None
    return snapshot.session_id
