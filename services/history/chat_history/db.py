"""The database engine of the history service, and transactions scoped to one org.

Every transaction on the chat tables goes through `org_transaction`: it sets `app.org_id` for
that transaction only, and PostgreSQL's row-level security then shows and accepts rows of that
org alone (services/history/migrations/versions/0002_row_level_security.py).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from chat_history.settings import HistorySettings

log = logging.getLogger("chat_history.db")


def create_engine(settings: HistorySettings) -> AsyncEngine:
    return create_async_engine(
        settings.database_url,
        # Every event in flight (HISTORY_PREFETCH) holds a connection beside the RPCs' share:
        # with fewer, handlers timed out waiting for one under a backlog and their events were
        # redelivered until dead-lettered (docs/faults.md). The connections stay open: overflow
        # connections are closed when returned, and opening one (TLS negotiation, login, every
        # statement prepared again) cost more than the statements it ran (docs/benchmarks.md).
        pool_size=settings.database_pool_size + settings.history_prefetch,
        # Bursts of RPCs beyond that.
        max_overflow=settings.database_pool_size,
        pool_pre_ping=True,
    )


@asynccontextmanager
async def org_transaction(engine: AsyncEngine, org_id: UUID) -> AsyncIterator[AsyncConnection]:
    async with engine.begin() as conn:
        await conn.execute(select(func.set_config("app.org_id", str(org_id), True)))
        yield conn


async def database_answers(engine: AsyncEngine) -> bool:
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


async def role_problems(engine: AsyncEngine) -> list[str]:
    """Why row-level security would not protect this connection's role, if it would not."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT r.rolsuper, r.rolbypassrls, "
                    "EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = 'chat' "
                    "AND tableowner = current_user) AS owns "
                    "FROM pg_roles r WHERE r.rolname = current_user"
                )
            )
        ).one()
    problems = []
    if row.rolsuper:
        problems.append("is a superuser")
    if row.rolbypassrls:
        problems.append("has BYPASSRLS")
    if row.owns:
        problems.append("owns the chat tables")
    return problems
