"""Migration 0004 (turns and attempts) goes down and up again, keeping the rows it does not own."""

from __future__ import annotations

import asyncio
from uuid import uuid4

from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from chat_devtools.infra import APP_ROLE, Databases
from chat_history.migrate import MIGRATIONS
from chat_runtime.migrations import alembic_config


async def _columns(url: str) -> set[str]:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        rows = await conn.execute(
            text(
                "SELECT table_name || '.' || column_name FROM information_schema.columns "
                "WHERE table_schema = 'chat' AND column_name IN "
                "('active_message_id', 'active_since', 'attempt')"
            )
        )
        found = {row[0] for row in rows}
    await engine.dispose()
    return found


async def _sessions(url: str) -> int:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        count = (await conn.execute(text("SELECT count(*) FROM chat.sessions"))).scalar_one()
    await engine.dispose()
    return int(count)


def test_migration_0004_is_reversible(databases: Databases) -> None:
    url = databases.admin_url
    config = alembic_config(MIGRATIONS, url, APP_ROLE)
    added = {
        "sessions.active_message_id",
        "sessions.active_since",
        "messages.attempt",
        "llm_calls.attempt",
    }
    assert asyncio.run(_columns(url)) == added

    async def seed() -> None:
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO chat.sessions (id, org_id, user_id, active_message_id, "
                    "active_since) VALUES (:s, :o, :u, :m, now())"
                ),
                {"s": uuid4(), "o": uuid4(), "u": uuid4(), "m": uuid4()},
            )
        await engine.dispose()

    asyncio.run(seed())
    command.downgrade(config, "0003")
    assert asyncio.run(_columns(url)) == set()
    command.upgrade(config, "head")
    assert asyncio.run(_columns(url)) == added
    assert asyncio.run(_sessions(url)) == 1
