"""Is RabbitMQ up, is PostgreSQL up, does the database exist: quick checks with clear answers."""

from __future__ import annotations

import asyncio

import aio_pika
import asyncpg
from sqlalchemy.engine import make_url

from chat_contracts.base import UserRef
from chat_contracts.control import UserSignedOut
from chat_contracts.topology import Topology
from chat_runtime.declare import declare_exchange
from chat_runtime.wire import Wire

TIMEOUT = 3.0


class Unreachable(Exception):
    pass


def _asyncpg_dsn(database_url: str, database: str | None = None) -> str:
    url = make_url(database_url).set(drivername="postgresql")
    if database is not None:
        url = url.set(database=database)
    return url.render_as_string(hide_password=False)


def app_role(database_url: str) -> str | None:
    """The services' role: the user of DATABASE_URL."""
    return make_url(database_url).username


async def _admin_connection(admin_url: str) -> asyncpg.Connection:
    try:
        return await asyncio.wait_for(asyncpg.connect(_asyncpg_dsn(admin_url, "postgres")), TIMEOUT)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        host = make_url(admin_url).host
        raise Unreachable(f"PostgreSQL does not answer at {host}: {exc}") from exc


async def create_database(admin_url: str, database_url: str) -> list[str]:
    """Create the database and the services' role (without privileges) if they are missing."""
    done: list[str] = []
    name = make_url(admin_url).database
    assert name is not None
    conn = await _admin_connection(admin_url)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
            done.append(f"created database {name}")
        role = app_role(database_url)
        admin = make_url(admin_url).username
        exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
        if role and role != admin and not exists:
            password = make_url(database_url).password
            quoted = role.replace('"', '""')
            await conn.execute(
                f'CREATE ROLE "{quoted}" LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE'
                + (" PASSWORD " + _literal(password) if password else "")
            )
            done.append(f"created role {role}")
    finally:
        await conn.close()
    return done


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


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


async def broadcast_sign_out(amqp_url: str, prefix: str, user: UserRef) -> None:
    """Tell every gateway replica to close this user's sockets."""
    topology = Topology(prefix)
    envelope = Wire(topology, "chatctl").encode(
        UserSignedOut(user_id=user.user_id, reason="disabled")
    )
    connection = await asyncio.wait_for(aio_pika.connect(amqp_url), TIMEOUT)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await declare_exchange(channel, topology.control)
        await exchange.publish(envelope.aio_pika_message(), routing_key=envelope.routing_key)
