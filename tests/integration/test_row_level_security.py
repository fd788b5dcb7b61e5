"""Defence in depth: the services' role sees and writes only rows of the org it has set."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import UUID, uuid4

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from chat_contracts.history import TurnReply
from chat_history.db import org_transaction, role_problems
from chat_history.store import turns

TABLES = ("sessions", "messages", "tool_audit", "llm_calls", "org_budgets", "budget_holds")


@pytest.fixture
async def app_engine(app_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(app_database_url)
    yield engine
    await engine.dispose()


async def _seed_session(admin_url: str) -> tuple[UUID, UUID]:
    org_id, session_id = uuid4(), uuid4()
    admin = create_async_engine(admin_url)
    async with admin.begin() as conn:
        await conn.execute(
            text("INSERT INTO chat.sessions (id, org_id, user_id) VALUES (:s, :o, :u)"),
            {"s": session_id, "o": org_id, "u": uuid4()},
        )
        await conn.execute(
            text("INSERT INTO chat.org_budgets (org_id, monthly_budget_usd) VALUES (:o, 5)"),
            {"o": org_id},
        )
    await admin.dispose()
    return org_id, session_id


async def test_the_services_role_is_not_owner_superuser_or_bypassrls(
    app_engine: AsyncEngine,
) -> None:
    assert await role_problems(app_engine) == []


async def test_the_right_org_sees_its_rows(app_engine: AsyncEngine, database_url: str) -> None:
    org_id, session_id = await _seed_session(database_url)
    async with org_transaction(app_engine, org_id) as conn:
        rows = (await conn.execute(text("SELECT id FROM chat.sessions"))).all()
    assert [row.id for row in rows] == [session_id]


@pytest.mark.parametrize("context", ["none", "wrong"])
async def test_without_the_org_context_nothing_is_visible(
    app_engine: AsyncEngine, database_url: str, context: str
) -> None:
    await _seed_session(database_url)
    if context == "none":
        async with app_engine.begin() as conn:
            counts = [
                (await conn.execute(text(f"SELECT count(*) FROM chat.{table}"))).scalar_one()
                for table in TABLES
            ]
    else:
        async with org_transaction(app_engine, uuid4()) as conn:
            counts = [
                (await conn.execute(text(f"SELECT count(*) FROM chat.{table}"))).scalar_one()
                for table in TABLES
            ]
    assert counts == [0] * len(TABLES)


@pytest.mark.parametrize("context", ["none", "wrong"])
async def test_without_the_org_context_nothing_can_be_written(
    app_engine: AsyncEngine, database_url: str, context: str
) -> None:
    org_id, session_id = await _seed_session(database_url)
    insert = text("INSERT INTO chat.sessions (id, org_id, user_id) VALUES (:s, :o, :u)")
    values = {"s": uuid4(), "o": org_id, "u": uuid4()}
    transaction = app_engine.begin() if context == "none" else org_transaction(app_engine, uuid4())
    async with transaction as conn:
        with pytest.raises(DBAPIError, match="row-level security"):
            await conn.execute(insert, values)
    # Updates and deletes of another org's rows touch nothing.
    async with org_transaction(app_engine, uuid4()) as conn:
        updated = await conn.execute(
            text("UPDATE chat.sessions SET ended_at = now() WHERE id = :s"), {"s": session_id}
        )
        deleted = await conn.execute(
            text("DELETE FROM chat.org_budgets WHERE org_id = :o"), {"o": org_id}
        )
    assert updated.rowcount == 0 and deleted.rowcount == 0


async def test_message_timings_are_isolated_like_every_chat_table(
    app_engine: AsyncEngine, database_url: str
) -> None:
    org_id, message_id = uuid4(), uuid4()
    admin = create_async_engine(database_url)
    async with admin.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO chat.message_timings (message_id, org_id, correlation_id, "
                "received_at) VALUES (:m, :o, :c, now())"
            ),
            {"m": message_id, "o": org_id, "c": uuid4()},
        )
    await admin.dispose()
    count = text("SELECT count(*) FROM chat.message_timings WHERE message_id = :m")
    async with org_transaction(app_engine, org_id) as conn:
        assert (await conn.execute(count, {"m": message_id})).scalar_one() == 1
    async with org_transaction(app_engine, uuid4()) as conn:
        assert (await conn.execute(count, {"m": message_id})).scalar_one() == 0
        with pytest.raises(DBAPIError, match="row-level security"):
            await conn.execute(
                text(
                    "INSERT INTO chat.message_timings (message_id, org_id, correlation_id) "
                    "VALUES (:m, :o, :c)"
                ),
                {"m": uuid4(), "o": org_id, "c": uuid4()},
            )


@pytest.mark.parametrize("interrupt", [False, True])
async def test_a_turn_claim_in_another_orgs_context_changes_nothing(
    app_engine: AsyncEngine, database_url: str, interrupt: bool
) -> None:
    _, session_id = await _seed_session(database_url)
    holder, stranger_org = uuid4(), uuid4()
    turn = text("SELECT active_message_id, user_id FROM chat.sessions WHERE id = :s")
    admin = create_async_engine(database_url)
    async with admin.begin() as conn:
        await conn.execute(
            text(
                "UPDATE chat.sessions SET active_message_id = :m, "
                "active_since = now() - interval '1 hour' WHERE id = :s"
            ),
            {"s": session_id, "m": holder},
        )
        owner = (await conn.execute(turn, {"s": session_id})).one().user_id

    # The session's own user and id, a stale holder, but another org's context.
    async with org_transaction(app_engine, stranger_org) as conn:
        reply = await turns.claim_turn(
            conn,
            stranger_org,
            owner,
            session_id,
            uuid4(),
            interrupt=interrupt,
            stale_after_seconds=60,
        )

    async with admin.begin() as conn:
        after = (await conn.execute(turn, {"s": session_id})).one()
    await admin.dispose()
    assert reply == TurnReply(status="busy")  # refused, and the holder is not revealed
    assert after.active_message_id == holder
