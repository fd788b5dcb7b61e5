"""CPU per `StartAnswer` in the history service (`python -m bench.probes.start_answer_cost`).

Asks history's own `AnswerStarts.start` (chat_history/answers.py) for the turn of 200 sessions
of one org, once where the turn is free ("claimed": the claim, the earlier messages and the hold,
two transactions) and once more where it is held ("busy": the claim alone), two rounds, and
prints the CPU of this process per question (PostgreSQL's own work is not counted). Needs
PostgreSQL like the tests (`DATABASE_ADMIN_URL` or `DATABASE_URL`, default the local
server); makes and drops its own database.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from uuid import UUID, uuid4

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from chat_contracts.history import HoldPrice, StartAnswer
from chat_devtools.infra import fresh_database, postgres_server_url
from chat_devtools.questions import a_user
from chat_history.answers import AnswerStarts
from chat_history.db import org_transaction
from chat_history.persisting import persist_event
from chat_history.settings import HistorySettings
from chat_history.store import sessions
from chat_history.writer import EventWriter

SESSIONS = 200
HOLD = HoldPrice(
    input_per_mtok=Decimal(3), output_per_mtok=Decimal(15), prompt_chars=5, max_tokens=100
)


async def _measure(url: str) -> None:
    engine = create_async_engine(url, pool_size=2)
    settings = HistorySettings(database_url=url, default_org_budget_usd=Decimal(1000))
    writer = EventWriter(engine, persist_event, max_batch=16)
    user = a_user()
    starts = AnswerStarts(engine, settings, writer)
    opened_ids: list[UUID] = []
    for _ in range(SESSIONS):
        async with org_transaction(engine, user.org_id) as conn:
            opened = await sessions.open_session(conn, user.org_id, user.user_id, None, 10)
        assert opened.session_id is not None
        opened_ids.append(opened.session_id)

    async def ask_each(expected: str) -> float:
        cpu = time.process_time()
        for session_id in opened_ids:
            request = StartAnswer(
                org_id=user.org_id,
                user_id=user.user_id,
                session_id=session_id,
                message_id=uuid4(),
                exclude_message_id=uuid4(),
                hold=HOLD,
            )
            reply = await starts.start(request)
            assert reply.turn.status == expected, reply
        return (time.process_time() - cpu) / len(opened_ids) * 1e6

    for round_ in (1, 2):
        claimed = await ask_each("claimed")
        busy = await ask_each("busy")
        print(
            f"round {round_}: claimed {claimed:5.0f} µs CPU, busy {busy:5.0f} µs CPU per question"
        )
        async with org_transaction(engine, user.org_id) as conn:  # every turn free again
            await conn.execute(text("UPDATE chat.sessions SET active_message_id = NULL"))
    await engine.dispose()


def main() -> None:
    print(f"StartAnswer for {SESSIONS} sessions of one org")
    with postgres_server_url() as server, fresh_database(server) as databases:
        asyncio.run(_measure(databases.app_url))


if __name__ == "__main__":
    main()
