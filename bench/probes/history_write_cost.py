"""CPU per event of the history service's writes (`python -m bench.probes.history_write_cost`).

Writes N turns' worth of events (user message, routed, progress, complete, delivered) through
the service's own code (`chat_history.persisting.persist_event`) three ways: a transaction per
event through SQLAlchemy (as history did before batching), a transaction per event begun on the
driver connection (what the event writer does when events come one at a time), and all of them
in one transaction (what the event writer does under load). Prints the CPU of this process per
event (PostgreSQL's own work is not counted) and the wall time, each way twice (the first round
also warms up). Needs PostgreSQL like the tests (`DATABASE_ADMIN_URL` or `DATABASE_URL`,
default the local server); makes and drops its own database.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy.ext.asyncio import create_async_engine

from chat_contracts.base import LlmCall
from chat_contracts.events import DeliveredEvent, ProgressEvent
from chat_devtools.infra import fresh_database, postgres_server_url
from chat_devtools.questions import a_question as _question
from chat_devtools.questions import a_user as _user
from chat_history.db import driver_transaction, org_transaction, set_org_here
from chat_history.persisting import persist_event
from chat_history.store import sessions

TURNS = 200


def _events(user: Any, session_id: Any) -> list[Any]:
    message, routed, complete = _question(user, session_id)
    ids = {
        "session_id": session_id,
        "correlation_id": message.correlation_id,
        "message_id": routed.message_id,
        "org_id": user.org_id,
    }
    assert complete.llm_call is not None
    progress = ProgressEvent(
        **ids,
        user_id=user.user_id,
        llm_call=LlmCall(
            **{**complete.llm_call.model_dump(), "status": "streaming"},
        ),
    )
    delivered = DeliveredEvent(**ids, seq=1, delivered_at=time.time())
    return [message, routed, progress, complete, delivered]


async def _measure(url: str) -> None:
    engine = create_async_engine(url, pool_size=2)
    user = _user()
    async with org_transaction(engine, user.org_id) as conn:
        opened = await sessions.open_session(conn, user.org_id, user.user_id, None, 10)
    assert opened.session_id is not None
    modes = ("a transaction per event", "a driver transaction each", "one transaction")
    for mode in modes + modes:  # twice: the first round also warms up (prepared statements)
        batches = [_events(user, opened.session_id) for _ in range(TURNS)]
        events = [event for batch in batches for event in batch]
        cpu, wall = time.process_time(), time.perf_counter()
        if mode == "one transaction":
            async with org_transaction(engine, user.org_id) as conn:
                for event in events:
                    await persist_event(conn, event, None)
        elif mode == "a driver transaction each":  # what the event writer does, when idle
            for event in events:
                async with driver_transaction(engine) as conn:
                    await set_org_here(conn, user.org_id)
                    await persist_event(conn, event, None)
        else:
            for event in events:
                async with org_transaction(engine, user.org_id) as conn:
                    await persist_event(conn, event, None)
        cpu_us = (time.process_time() - cpu) / len(events) * 1e6
        wall_ms = (time.perf_counter() - wall) / len(events) * 1e3
        print(f"{mode:26s} {cpu_us:6.0f} µs CPU per event, {wall_ms:5.2f} ms wall per event")
    await engine.dispose()


def main() -> None:
    print(f"{TURNS} turns x 5 events (user_message, routed, progress, complete, delivered)")
    with postgres_server_url() as server, fresh_database(server) as databases:
        asyncio.run(_measure(databases.app_url))


if __name__ == "__main__":
    main()
