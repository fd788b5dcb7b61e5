"""RabbitMQ and PostgreSQL for tests and the benchmark: testcontainers where a Docker engine
answers, otherwise the servers named by `AMQP_URL` / `DATABASE_URL` (CI on this machine); a
fresh migrated database and a broker prefix of their own for each user of them."""

from __future__ import annotations

import asyncio
import functools
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from uuid import uuid4

import aio_pika
import asyncpg
from sqlalchemy.engine import make_url

from chat_contracts.topology import Topology
from chat_gateway import admin as gateway_admin
from chat_history import admin as history_admin

DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_DATABASE = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


@functools.cache
def docker_available() -> bool:
    """Does a Docker engine answer? A raw `/_ping`: the docker client leaks a socket on failure."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        if host.startswith("unix://"):
            sock = socket.socket(socket.AF_UNIX)
            address: str | tuple[str, int] = host.removeprefix("unix://")
        else:
            hostname, _, port = host.removeprefix("tcp://").partition(":")
            sock = socket.socket()
            address = (hostname, int(port or 2375))
        with sock:
            sock.settimeout(1)
            sock.connect(address)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return b"OK" in sock.recv(4096)
    except OSError:
        return False


@contextmanager
def rabbitmq_url() -> Iterator[str]:
    if os.environ.get("AMQP_URL") or not docker_available():
        yield os.environ.get("AMQP_URL", DEFAULT_AMQP)
        return
    from testcontainers.rabbitmq import RabbitMqContainer

    with RabbitMqContainer("rabbitmq:3.13-management") as container:
        params = container.get_connection_params()
        yield f"amqp://guest:guest@{params.host}:{params.port}/"


@contextmanager
def postgres_server_url() -> Iterator[str]:
    """A URL of the server, as a role that may create databases: tests create their own.
    DATABASE_ADMIN_URL first: `make test` exports DATABASE_URL as the services' role, which
    may not."""
    from_env = os.environ.get("DATABASE_ADMIN_URL") or os.environ.get("DATABASE_URL")
    if from_env or not docker_available():
        yield from_env or DEFAULT_DATABASE
        return
    from testcontainers.postgres import PostgresContainer

    with PostgresContainer("postgres:16", driver="asyncpg") as container:
        yield container.get_connection_url()


def _dsn(url: str, database: str) -> str:
    return (
        make_url(url)
        .set(drivername="postgresql", database=database)
        .render_as_string(hide_password=False)
    )


APP_ROLE = "agentchat_app"


@dataclass(frozen=True)
class Databases:
    admin_url: str  # the owner: migrations, seeding, assertions across orgs
    app_url: str  # the services' role: row-level security applies


@contextmanager
def fresh_database(server_url: str) -> Iterator[Databases]:
    """A new, migrated database; dropped afterwards."""
    name = f"test_{uuid4().hex[:12]}"

    async def admin(*statements: str) -> None:
        conn = await asyncpg.connect(_dsn(server_url, "postgres"))
        try:
            for sql in statements:
                await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(
        admin(
            f'CREATE DATABASE "{name}"',
            f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') "  # nosec B608
            f"THEN CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS; END IF; END $$",
        )
    )
    url = make_url(server_url).set(drivername="postgresql+asyncpg", database=name)
    admin_url = url.render_as_string(hide_password=False)
    app_url = url.set(username=APP_ROLE, password=None).render_as_string(hide_password=False)
    try:
        gateway_admin.upgrade(admin_url, APP_ROLE)
        history_admin.upgrade(admin_url, APP_ROLE)
        yield Databases(admin_url=admin_url, app_url=app_url)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def unique_prefix() -> str:
    return f"t{uuid4().hex[:10]}"


async def delete_topology(amqp_url: str, prefix: str) -> None:
    """Remove a test's durable queues and exchanges so runs leave nothing behind."""
    topology = Topology(prefix)
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        for queue in topology.durable_queues():
            await channel.queue_delete(queue.name)
        for exchange in topology.exchanges():
            await channel.exchange_delete(exchange.name)
