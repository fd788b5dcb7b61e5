"""Alembic, the same way for every service that owns tables.

Each owner keeps its migrations in `services/<name>/migrations` and its tables in its own
PostgreSQL schema, with its own version table in that schema; so owners never touch each
other's tables or migration history. Migrations run as a separate step (`chatctl db upgrade`,
a Kubernetes Job, a one-shot compose service), never on a replica's start.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine


def alembic_config(script_location: Path, admin_url: str, app_role: str | None = None) -> Config:
    """`admin_url` owns the tables; `app_role` is the services' role, granted what they need."""
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("sqlalchemy.url", admin_url.replace("%", "%%"))
    if app_role is not None:
        config.set_main_option("app_role", app_role)
    return config


def upgrade(
    script_location: Path, admin_url: str, app_role: str | None, revision: str = "head"
) -> None:
    command.upgrade(alembic_config(script_location, admin_url, app_role), revision)


def app_role() -> str | None:
    """In a migration: the services' database role, or None when they share the owner's."""
    return context.config.get_main_option("app_role")


def grant_to_app_role(schema: str) -> None:
    """In a migration: let the services' role use the schema's tables, now and later ones."""
    role = app_role()
    if role is None:
        return
    from alembic import op

    quoted = role.replace('"', '""')
    op.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{quoted}"')
    privileges = "SELECT, INSERT, UPDATE, DELETE"
    op.execute(f'GRANT {privileges} ON ALL TABLES IN SCHEMA "{schema}" TO "{quoted}"')
    op.execute(
        f'ALTER DEFAULT PRIVILEGES IN SCHEMA "{schema}" GRANT {privileges} ON TABLES TO "{quoted}"'
    )


def run_env(metadata: MetaData, schema: str) -> None:
    """The body of a service's `migrations/env.py` (online mode, asyncpg)."""
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None

    def migrate(connection: Connection) -> None:
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table_schema=schema,
            include_schemas=True,
            include_name=lambda name, type_, _parent: type_ != "schema" or name == schema,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def main() -> None:
        engine = create_async_engine(url)
        async with engine.begin() as connection:
            await connection.run_sync(migrate)
        await engine.dispose()

    asyncio.run(main())
