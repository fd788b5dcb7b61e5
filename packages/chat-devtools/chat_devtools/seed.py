"""Organisations, users and tokens, written through the owning services' `admin` modules."""

from __future__ import annotations

from decimal import Decimal
from uuid import uuid4

from sqlalchemy.ext.asyncio import create_async_engine

from chat_contracts.base import UserRef
from chat_gateway import admin as identity
from chat_gateway.admin import GatewaySettings
from chat_history import admin as history

TEST_JWT_SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"  # nosec B105


def gateway_settings(**overrides: object) -> GatewaySettings:
    values: dict[str, object] = {"jwt_secret": TEST_JWT_SECRET, "app_env": "test", **overrides}
    return GatewaySettings(**values)  # type: ignore[arg-type]


async def create_user(
    database_url: str,
    *,
    budget_usd: Decimal = Decimal(10),
    org: str | None = None,
    name: str = "Ada Lovelace",
    password: str | None = None,
) -> UserRef:
    """A user in a new org (or an existing one, by name)."""
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            if org is None:
                org = f"org-{uuid4().hex[:8]}"
                org_id = await identity.create_org(conn, org)
                await history.set_budget(conn, org_id, budget_usd)
            else:
                org_id = await identity.org_id_by_name(conn, org)
            email = f"{uuid4().hex[:8]}@example.com"
            return await identity.create_user(conn, org_id, email, name, password)
    finally:
        await engine.dispose()


def token_for(user: UserRef, ttl_seconds: int | None = None) -> str:
    return identity.mint_token(user, gateway_settings(), ttl_seconds)
