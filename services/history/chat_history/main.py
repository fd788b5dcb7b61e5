"""History service: app factory and entry point."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from faststream.asgi import AsgiFastStream

from chat_contracts.topology import Topology
from chat_history.answers import AnswerStarts
from chat_history.db import create_engine, create_writer_engine, database_answers, role_problems
from chat_history.handlers import register
from chat_history.persisting import persist_event
from chat_history.questions import Questions
from chat_history.settings import HistorySettings
from chat_history.sweeper import sweep_forever
from chat_history.writer import EventWriter
from chat_runtime.publisher import Publisher
from chat_runtime.service import create_broker, serve, service_app
from chat_runtime.wire import Wire

SERVICE = "history"
log = logging.getLogger("chat_history")


def create_app(settings: HistorySettings | None = None) -> AsgiFastStream:
    settings = settings or HistorySettings()
    broker = create_broker(settings, SERVICE)
    engine = create_engine(settings)
    writer_engine = create_writer_engine(settings)
    # Questions on `engine`, event writes on their own connections (chat_history/db.py).
    writer = EventWriter(
        writer_engine,
        persist_event,
        max_batch=settings.history_prefetch,
        lanes=settings.history_write_lanes,
    )
    questions = Questions(engine, AnswerStarts(engine, settings, writer))
    register(broker, settings, writer, questions)
    publisher = Publisher(broker, Wire(Topology(settings.broker_prefix), SERVICE))
    tasks: list[asyncio.Task[None]] = []

    async def check_role() -> None:
        problems = await role_problems(engine)
        if problems:
            message = (
                "the database role of DATABASE_URL "
                + ", ".join(problems)
                + ": row-level security does not protect it; use a role without these"
            )
            if settings.app_env == "production":
                raise RuntimeError(message)
            log.warning(message)

    async def start_sweeper() -> None:
        tasks.append(asyncio.create_task(sweep_forever(publisher, engine, settings)))

    async def stop() -> None:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await engine.dispose()
        await writer_engine.dispose()

    async def database_ready() -> bool:
        return await database_answers(engine)

    return service_app(
        broker,
        settings,
        ready_checks=[database_ready],
        on_startup=[check_role],
        after_startup=[start_sweeper],
        on_shutdown=[stop],
    )


def run() -> None:
    settings = HistorySettings()
    serve(create_app(settings), settings, SERVICE)
