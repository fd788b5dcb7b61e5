"""Organisations and users (the `identity` schema)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID, uuid4

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from chat_contracts.base import UserRef
from chat_gateway.tables import orgs, revoked_tokens, users


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


@dataclass(frozen=True)
class Credentials:
    user: UserRef
    password_hash: str | None
    disabled: bool


async def credentials(conn: AsyncConnection, email: str) -> Credentials | None:
    row = (
        await conn.execute(select(users).where(func.lower(users.c.email) == email.strip().lower()))
    ).first()
    if row is None:
        return None
    return Credentials(
        user=UserRef(user_id=row.id, org_id=row.org_id, email=row.email, name=row.name),
        password_hash=row.password_hash,
        disabled=row.disabled_at is not None,
    )


async def set_password(conn: AsyncConnection, email: str, password_hash: str) -> None:
    result = await conn.execute(
        update(users)
        .where(func.lower(users.c.email) == email.strip().lower())
        .values(password_hash=password_hash)
    )
    if result.rowcount == 0:
        raise IdentityError(f"no user with email {email!r}")


async def set_disabled(conn: AsyncConnection, email: str, disabled: bool) -> UserRef:
    user = await user_by_email(conn, email)
    await conn.execute(
        update(users)
        .where(users.c.id == user.user_id)
        .values(disabled_at=func.now() if disabled else None)
    )
    return user


async def is_locked_out(conn: AsyncConnection, user_id: UUID, jti: str | None) -> bool:
    """Is this user disabled, or this token signed out? (Unknown users are not: an external
    provider's users have no row here unless an operator disabled them.)"""
    disabled = (
        select(users.c.id).where(users.c.id == user_id, users.c.disabled_at.is_not(None)).exists()
    )
    revoked = select(revoked_tokens.c.jti).where(revoked_tokens.c.jti == (jti or "")).exists()
    return bool((await conn.execute(select(disabled | revoked))).scalar_one())


async def revoke_token(
    conn: AsyncConnection, jti: str, user_id: UUID, expires_at: datetime
) -> None:
    await conn.execute(
        insert(revoked_tokens)
        .values(jti=jti, user_id=user_id, expires_at=expires_at)
        .on_conflict_do_nothing(index_elements=[revoked_tokens.c.jti])
    )
    # Expired tokens are refused anyway: their revocations are dead weight.
    await conn.execute(delete(revoked_tokens).where(revoked_tokens.c.expires_at < func.now()))
