"""Ends sessions that have been idle for too long and tells their sockets."""

from __future__ import annotations

import asyncio
import logging

from faststream.rabbit import RabbitBroker
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_history import repository
from chat_history.settings import HistorySettings
from chat_shared.contracts import SessionEndedEvent
from chat_shared.runtime import publish_event
from chat_shared.topology import Topology

log = logging.getLogger("chat_history.sweeper")


async def sweep_once(broker: RabbitBroker, engine: AsyncEngine, settings: HistorySettings) -> int:
    # UPDATE ... RETURNING is atomic, so with several replicas each session is ended once.
    async with engine.begin() as conn:
        ended = await repository.end_idle_sessions(conn, settings.session_idle_timeout_seconds)
    topology = Topology(settings.broker_prefix)
    for session_id in ended:
        await publish_event(
            broker, topology, SessionEndedEvent(session_id=session_id, reason="idle_timeout")
        )
    return len(ended)


async def sweep_forever(
    broker: RabbitBroker, engine: AsyncEngine, settings: HistorySettings
) -> None:
    while True:
        await asyncio.sleep(settings.sweep_interval)
        try:
            count = await sweep_once(broker, engine, settings)
        except Exception:
            log.exception("idle session sweep failed; retrying at the next interval")
            continue
        if count:
            log.info("ended idle sessions", extra={"count": count})
