"""Organisations and users (the `identity` schema)."""

from __future__ import annotations

from uuid import UUID, uuid4

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from chat_gateway.tables import orgs, users
from chat_shared.contracts import UserRef


class IdentityError(Exception):
    """A name or email clash, or an unknown org or user; the message says which."""


async def create_org(conn: AsyncConnection, name: str) -> UUID:
    if (await conn.execute(select(orgs.c.id).where(orgs.c.name == name))).first() is not None:
        raise IdentityError(f"an organisation named {name!r} already exists")
    org_id = uuid4()
    await conn.execute(orgs.insert().values(id=org_id, name=name))
    return org_id


async def org_id_by_name(conn: AsyncConnection, name: str) -> UUID:
    org_id: UUID | None = (
        await conn.execute(select(orgs.c.id).where(orgs.c.name == name))
    ).scalar()
    if org_id is None:
        raise IdentityError(f"no organisation named {name!r}")
    return org_id


async def create_user(
    conn: AsyncConnection, org_id: UUID, email: str, name: str, password_hash: str | None = None
) -> UserRef:
    email = email.strip()
    existing = await conn.execute(
        select(users.c.id).where(func.lower(users.c.email) == email.lower())
    )
    if existing.first() is not None:
        raise IdentityError(f"a user with email {email!r} already exists")
    user_id = uuid4()
    await conn.execute(
        users.insert().values(
            id=user_id, org_id=org_id, email=email, name=name, password_hash=password_hash
        )
    )
    return UserRef(user_id=user_id, org_id=org_id, email=email, name=name)


async def user_by_email(conn: AsyncConnection, email: str) -> UserRef:
    row = (
        await conn.execute(select(users).where(func.lower(users.c.email) == email.strip().lower()))
    ).first()
    if row is None:
        raise IdentityError(f"no user with email {email!r}")
    return UserRef(user_id=row.id, org_id=row.org_id, email=row.email, name=row.name)


async def count_users(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(users))).scalar_one())
