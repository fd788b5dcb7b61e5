"""Who is asking: a verified token whose user is not disabled and which was not signed out."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from chat_gateway import identity
from chat_gateway.auth import Identity, InvalidToken, TokenVerifier


class AccessControl:
    def __init__(self, verifier: TokenVerifier, engine: AsyncEngine) -> None:
        self._verifier = verifier
        self._engine = engine

    async def identify(self, token: str | None) -> Identity | None:
        if not token:
            return None
        try:
            who = await self._verifier.verify(token)
        except InvalidToken:
            return None
        async with self._engine.connect() as conn:
            if await identity.is_locked_out(conn, who.user.user_id, who.jti):
                return None
        return who
