"""History tries a transaction again when PostgreSQL rolled it back as a deadlock victim, or
when its connection was found closed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError

from chat_history.db import retry_transient


class PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def raising(*errors: BaseException) -> tuple[list[int], Callable[[], Awaitable[str]]]:
    """Work that raises each of `errors` in turn, then returns "done"; `calls` counts tries."""
    calls: list[int] = []

    async def work() -> str:
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return "done"

    return calls, work


def failing(*codes: str) -> tuple[list[int], Callable[[], Awaitable[str]]]:
    """Work that fails once per code ("closed": its connection was found closed)."""
    return raising(
        *(
            DBAPIError(
                "SELECT",
                None,
                PgError("" if code == "closed" else code),
                connection_invalidated=code == "closed",
            )
            for code in codes
        )
    )


async def test_a_deadlock_victim_is_tried_again() -> None:
    calls, work = failing("40P01", "closed")
    assert await retry_transient(work) == "done"
    assert len(calls) == 3


async def test_it_gives_up_after_its_tries() -> None:
    calls, work = failing("40P01", "40P01", "40P01")
    with pytest.raises(DBAPIError):
        await retry_transient(work)
    assert len(calls) == 3


async def test_other_errors_are_not_retried() -> None:
    calls, work = failing("23505")  # unique_violation
    with pytest.raises(DBAPIError):
        await retry_transient(work)
    assert len(calls) == 1


async def test_a_deadlock_raised_by_the_driver_is_tried_again() -> None:
    # Statements run on the driver connection (`chat_history.db.execute`) raise asyncpg's own
    # errors, not SQLAlchemy's.
    calls, work = raising(
        asyncpg.DeadlockDetectedError("deadlock detected"),
        asyncpg.UniqueViolationError("duplicate key"),
    )
    with pytest.raises(asyncpg.UniqueViolationError):
        await retry_transient(work)
    assert len(calls) == 2


async def test_a_connection_lost_under_the_driver_is_tried_again() -> None:
    # A statement run on its own (`fetch_row_at_once`, the budget hold) on a connection the
    # server closed: asyncpg raises its own error, and the connection is dropped from the pool.
    calls, work = raising(
        asyncpg.ConnectionDoesNotExistError("connection was closed"),
        ConnectionResetError("reset by peer"),
    )
    assert await retry_transient(work) == "done"
    assert len(calls) == 3


async def test_a_timeout_is_not_tried_again() -> None:
    # A TimeoutError is an OSError, but no sign that the connection is gone.
    calls, work = raising(TimeoutError(), TimeoutError())
    with pytest.raises(TimeoutError):
        await retry_transient(work)
    assert len(calls) == 1
