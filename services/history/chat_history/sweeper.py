"""Ends sessions that have been idle for too long and tells their sockets."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncEngine

from chat_contracts.events import SessionEndedEvent
from chat_history.settings import HistorySettings
from chat_history.store import sessions
from chat_runtime.publisher import Publisher

log = logging.getLogger("chat_history.sweeper")


async def sweep_once(publisher: Publisher, engine: AsyncEngine, settings: HistorySettings) -> int:
    # UPDATE ... RETURNING is atomic, so with several replicas each session is ended once.
    async with engine.begin() as conn:
        ended = await sessions.end_idle_sessions(conn, settings.session_idle_timeout_seconds)
    for session_id in ended:
        await publisher.publish(SessionEndedEvent(session_id=session_id, reason="idle_timeout"))
    return len(ended)


async def sweep_forever(
    publisher: Publisher, engine: AsyncEngine, settings: HistorySettings
) -> None:
    while True:
        await asyncio.sleep(settings.sweep_interval)
        try:
            count = await sweep_once(publisher, engine, settings)
        except Exception:
            log.exception("idle session sweep failed; retrying at the next interval")
            continue
        if count:
            log.info("ended idle sessions", extra={"count": count})
