"""Reading rows back, to assert what the database holds; dropping every connection to it."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine


async def fetch(database_url: str, sql: str, **params: Any) -> list[dict[str, Any]]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(text(sql), params)
            return [dict(row._mapping) for row in result]
    finally:
        await engine.dispose()


async def wait_for_rows(
    database_url: str, sql: str, count: int = 1, timeout: float = 30, **params: Any
) -> list[dict[str, Any]]:
    """Rows are written asynchronously by the history service: poll until `count` are there."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        rows = await fetch(database_url, sql, **params)
        if len(rows) >= count:
            return rows
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{len(rows)} of {count} rows after {timeout}s: {sql}")
        await asyncio.sleep(0.05)


async def drop_connections(database_url: str) -> int:
    """Terminate every other connection to the database (as a restart would); how many."""
    rows = await fetch(
        database_url,
        "SELECT count(pg_terminate_backend(pid)) AS dropped FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    return int(rows[0]["dropped"])
