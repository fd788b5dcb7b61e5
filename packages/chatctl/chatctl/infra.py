"""Is RabbitMQ up, is PostgreSQL up, does the database exist: quick checks with clear answers."""

from __future__ import annotations

import asyncio

import aio_pika
import asyncpg
from sqlalchemy.engine import make_url

TIMEOUT = 3.0


class Unreachable(Exception):
    pass


def _asyncpg_dsn(database_url: str, database: str | None = None) -> str:
    url = make_url(database_url).set(drivername="postgresql")
    if database is not None:
        url = url.set(database=database)
    return url.render_as_string(hide_password=False)


async def create_database(database_url: str) -> bool:
    """Create the database the URL names, if it is missing. True when it was created."""
    name = make_url(database_url).database
    assert name is not None
    try:
        conn = await asyncio.wait_for(
            asyncpg.connect(_asyncpg_dsn(database_url, "postgres")), TIMEOUT
        )
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise Unreachable(
            f"PostgreSQL does not answer at {make_url(database_url).host}: {exc}"
        ) from exc
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        await conn.execute(f'CREATE DATABASE "{name}"')
        return True
    finally:
        await conn.close()


async def check(amqp_url: str, database_url: str) -> list[str]:
    problems: list[str] = []
    try:
        connection = await asyncio.wait_for(aio_pika.connect(amqp_url), TIMEOUT)
        await connection.close()
    except Exception as exc:
        problems.append(
            f"RabbitMQ does not answer at {amqp_url.split('@')[-1]} ({type(exc).__name__}). "
            "Start it with: rabbitmq-server -detached"
        )
    try:
        conn = await asyncio.wait_for(
            asyncpg.connect(_asyncpg_dsn(database_url, "postgres")), TIMEOUT
        )
        await conn.close()
    except Exception as exc:
        problems.append(
            f"PostgreSQL does not answer at {make_url(database_url).host} "
            f"({type(exc).__name__}). Start it with: "
            "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
        )
    return problems
