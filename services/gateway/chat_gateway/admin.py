"""What an operator does with the data the gateway owns (schema `identity`): the public
interface `chatctl` uses, run as the tables' owner. Nothing else of the gateway is for outside
use (docs/decisions/0015-one-shape.md).
"""

from __future__ import annotations

from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from chat_contracts.base import UserRef
from chat_gateway import identity, migrate
from chat_gateway.auth import mint_token
from chat_gateway.identity import IdentityError
from chat_gateway.passwords import hash_password
from chat_gateway.settings import GatewaySettings

__all__ = [
    "GatewaySettings",
    "IdentityError",
    "count_users",
    "create_org",
    "create_user",
    "mint_token",
    "org_id_by_name",
    "set_disabled",
    "set_password",
    "upgrade",
    "user_by_email",
]

create_org = identity.create_org
org_id_by_name = identity.org_id_by_name
user_by_email = identity.user_by_email
count_users = identity.count_users
set_disabled = identity.set_disabled


def upgrade(admin_url: str, app_role: str | None) -> None:
    """Apply the gateway's migrations (schema `identity`), granting `app_role` what it needs."""
    migrate.upgrade(admin_url, app_role)


async def create_user(
    conn: AsyncConnection, org_id: UUID, email: str, name: str, password: str | None
) -> UserRef:
    """A user of `org_id`; without a password, they sign in with tokens only."""
    hashed = hash_password(password) if password else None
    return await identity.create_user(conn, org_id, email, name, hashed)


async def set_password(conn: AsyncConnection, email: str, password: str) -> None:
    await identity.set_password(conn, email, hash_password(password))
