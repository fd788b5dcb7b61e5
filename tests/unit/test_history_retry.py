"""History tries a transaction again when PostgreSQL rolled it back as a deadlock victim, or
when its connection was found closed."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError

from chat_history.db import retry_transient


class PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def failing(*codes: str) -> tuple[list[int], object]:
    """Work that fails once per code ("closed": its connection was found closed)."""
    calls: list[int] = []

    async def work() -> str:
        calls.append(1)
        if len(calls) <= len(codes):
            code = codes[len(calls) - 1]
            closed = code == "closed"
            raise DBAPIError(
                "SELECT", None, PgError("" if closed else code), connection_invalidated=closed
            )
        return "done"

    return calls, work


async def test_a_deadlock_victim_is_tried_again() -> None:
    calls, work = failing("40P01", "closed")
    assert await retry_transient(work) == "done"  # type: ignore[arg-type]
    assert len(calls) == 3


async def test_it_gives_up_after_its_tries() -> None:
    calls, work = failing("40P01", "40P01", "40P01")
    with pytest.raises(DBAPIError):
        await retry_transient(work)  # type: ignore[arg-type]
    assert len(calls) == 3


async def test_other_errors_are_not_retried() -> None:
    calls, work = failing("23505")  # unique_violation
    with pytest.raises(DBAPIError):
        await retry_transient(work)  # type: ignore[arg-type]
    assert len(calls) == 1


async def test_a_deadlock_raised_by_the_driver_is_tried_again() -> None:
    # Statements run on the driver connection (`chat_history.db.execute`) raise asyncpg's own
    # errors, not SQLAlchemy's.
    calls: list[int] = []

    async def work() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise asyncpg.DeadlockDetectedError("deadlock detected")
        if len(calls) == 2:
            raise asyncpg.UniqueViolationError("duplicate key")
        return "done"

    with pytest.raises(asyncpg.UniqueViolationError):
        await retry_transient(work)
    assert len(calls) == 2


async def test_a_connection_lost_under_the_driver_is_tried_again() -> None:
    # A statement run on its own (`fetch_row_at_once`, the budget hold) on a connection the
    # server closed: asyncpg raises its own error, and the connection is dropped from the pool.
    calls: list[int] = []

    async def work() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise asyncpg.ConnectionDoesNotExistError("connection was closed")
        if len(calls) == 2:
            raise ConnectionResetError("reset by peer")
        return "done"

    assert await retry_transient(work) == "done"
    assert len(calls) == 3


async def test_a_timeout_is_not_tried_again() -> None:
    calls: list[int] = []

    async def work() -> str:
        calls.append(1)
        raise TimeoutError  # an OSError, but no sign that the connection is gone

    with pytest.raises(TimeoutError):
        await retry_transient(work)
    assert len(calls) == 1
