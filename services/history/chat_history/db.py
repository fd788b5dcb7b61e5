"""The database engine of the history service, and transactions scoped to one org.

Every transaction on the chat tables goes through `org_transaction`: it sets `app.org_id` for
that transaction only, and PostgreSQL's row-level security then shows and accepts rows of that
org alone (services/history/migrations/versions/0002_row_level_security.py).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
from sqlalchemy import literal, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from chat_history.settings import HistorySettings

log = logging.getLogger("chat_history.db")

# deadlock_detected, serialization_failure.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
TRANSIENT_TRIES = 3
# What a statement on the driver connection raises when the connection is gone (not a timeout:
# a statement that timed out is not tried again).
CONNECTION_LOST = (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, ConnectionError)
T = TypeVar("T")


def create_engine(settings: HistorySettings) -> AsyncEngine:
    """The engine of history's questions (RPCs) and its sweeper."""
    return create_async_engine(
        settings.database_url,
        # Overflow connections serve bursts of RPCs; they are closed when returned, and opening
        # one (TLS negotiation, login, every statement prepared again) costs more than the
        # statements it runs, so the pool is sized to avoid them.
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        # No ping before each use (a round trip per transaction): a connection found closed
        # fails its transaction, the pool drops them all, and `retry_transient` tries again.
        pool_pre_ping=False,
    )


def create_writer_engine(settings: HistorySettings) -> AsyncEngine:
    """The event writer's own engine, one connection per lane (chat_history/writer.py).

    Not the questions' pool: at 100 sessions a burst of turn claims, each waiting for the org's
    budget row, held every connection of a shared pool, and the event writes (which free the
    turns those claims wait for) queued behind them: hundreds of events fell seconds behind.
    """
    return create_async_engine(
        settings.database_url,
        pool_size=settings.history_write_lanes,
        max_overflow=0,
        # A connection found closed fails its batch, which is written again event by event.
        pool_pre_ping=False,
    )


@asynccontextmanager
async def org_transaction(engine: AsyncEngine, org_id: UUID) -> AsyncIterator[AsyncConnection]:
    async with engine.begin() as conn:
        await set_org(conn, org_id)
        yield conn


# Built once: building `select(func.set_config(...))` and its cache key on every call cost
# more CPU than running it (one set_org per transaction; docs/benchmarks.md).
_SET_ORG = text("SELECT set_config('app.org_id', :org_id, true)")


async def set_org(conn: AsyncConnection, org_id: UUID) -> None:
    """Rows of `org_id` alone, for the rest of the transaction (it may switch to another)."""
    await conn.execute(_SET_ORG, {"org_id": str(org_id)})


@asynccontextmanager
async def _on_driver(engine: AsyncEngine) -> AsyncIterator[tuple[AsyncConnection, Any]]:
    """A pooled connection and the asyncpg connection under it, for statements run on the
    driver outside any SQLAlchemy transaction; dropped from the pool if it turns out lost."""
    async with engine.connect() as conn:
        driver: Any = (await conn.get_raw_connection()).driver_connection
        try:
            yield conn, driver
        except CONNECTION_LOST:
            # The pool must not hand this connection out again.
            await conn.invalidate()
            raise


_SET_ORG_ON_DRIVER = "SELECT set_config('app.org_id', $1, true)"


@asynccontextmanager
async def driver_transaction(
    engine: AsyncEngine, org_id: UUID | None = None
) -> AsyncIterator[AsyncConnection]:
    """A transaction begun and committed on the asyncpg connection itself, for statements run
    with `execute`, `fetch_row`, `fetch_rows` and `fetch_value` alone (the event writer's, and
    `StartAnswer`'s claim). SQLAlchemy's own BEGIN (through its first statement), `set_org` and
    COMMIT cost several times the CPU of the statements that write an event (`python -m
    bench.probes.history_write_cost`, docs/benchmarks.md); here they are three short round
    trips. The org is `org_id` if given, or set (and switched) with `set_org_here`. A SQLAlchemy
    statement run inside would begin a transaction of its own: that raises, and everything is
    rolled back."""
    async with _on_driver(engine) as (conn, driver), driver.transaction():
        if org_id is not None:
            await set_org_here(conn, org_id)
        yield conn
        if conn.in_transaction():
            await conn.rollback()  # SQLAlchemy's (a savepoint), before the whole one
            raise RuntimeError("a SQLAlchemy statement ran in a driver transaction")


async def set_org_here(conn: AsyncConnection, org_id: UUID) -> None:
    """`set_org` in a `driver_transaction`."""
    await execute(conn, _SET_ORG_ON_DRIVER, str(org_id))


async def _driver(conn: AsyncConnection) -> Any:
    """The asyncpg connection under `conn`, in `conn`'s transaction.

    SQLAlchemy begins the transaction on the driver connection with the first statement run
    through it (`set_org`, in every transaction of this service); if none has run yet, one is.
    """
    sync = conn.sync_connection
    if sync is None:
        raise RuntimeError("the connection has not been started")
    found: Any = sync.connection.driver_connection
    if not found.is_in_transaction():
        await conn.execute(select(literal(1)))
    return found


# The writes of session events run on the driver connection with hand-written SQL: through
# SQLAlchemy Core each statement cost several times the CPU (building the statement, its cache
# key, the greenlet hop and the DBAPI emulation), most of history's CPU under load
# (docs/benchmarks.md).
async def execute(conn: AsyncConnection, sql: str, *args: Any) -> None:
    """Run `sql` with `args` ($1, $2, ...) in `conn`'s transaction."""
    await (await _driver(conn)).execute(sql, *args)


async def fetch_row(conn: AsyncConnection, sql: str, *args: Any) -> Any:
    """The first row `sql` returns (an asyncpg Record, None if none), in `conn`'s
    transaction."""
    return await (await _driver(conn)).fetchrow(sql, *args)


async def fetch_rows(conn: AsyncConnection, sql: str, *args: Any) -> list[Any]:
    """Every row `sql` returns (asyncpg Records), in `conn`'s transaction."""
    rows: list[Any] = await (await _driver(conn)).fetch(sql, *args)
    return rows


async def fetch_value(conn: AsyncConnection, sql: str, *args: Any) -> Any:
    """The first column of the first row `sql` returns (None if no row), in `conn`'s
    transaction."""
    return await (await _driver(conn)).fetchval(sql, *args)


async def fetch_row_at_once(engine: AsyncEngine, sql: str, *args: Any) -> Any:
    """The first row `sql` returns, run as a transaction of its own: one round trip, no BEGIN
    or COMMIT from here (PostgreSQL commits the statement when it ends). `sql` must set the org
    itself (`app.org_id`), as `chat.hold_budget` does: no `set_org` runs before it."""
    async with _on_driver(engine) as (_, driver):
        return await driver.fetchrow(sql, *args)


async def retry_transient(work: Callable[[], Awaitable[T]], tries: int = TRANSIENT_TRIES) -> T:
    """`work()` (one transaction), tried again when nothing of it was written and trying again
    can succeed: PostgreSQL rolled it back as a deadlock victim or for a serialization failure,
    or its connection was found closed (a database restart: the pool then drops every
    connection it holds, so the next try opens a new one; connections are not pinged before
    each use)."""
    for attempt in range(1, tries + 1):
        try:
            return await work()
        except (DBAPIError, asyncpg.PostgresError, *CONNECTION_LOST) as exc:
            # A statement run on the driver connection (`execute`, `fetch_row_at_once`) raises
            # asyncpg's own error, or the socket's when the connection is gone.
            if isinstance(exc, DBAPIError):
                code = getattr(exc.orig, "sqlstate", None)
                invalidated = exc.connection_invalidated
            elif isinstance(exc, CONNECTION_LOST):
                code, invalidated = None, True
            else:
                code, invalidated = exc.sqlstate, False
            transient = code in RETRYABLE_SQLSTATES or invalidated
            if not transient or attempt == tries:
                raise
            log.warning("a transaction failed (%s); trying it again", code or "connection lost")
    raise ValueError("tries must be at least 1")


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
