"""History service: app factory and entry point."""

from __future__ import annotations

import asyncio
import contextlib

from faststream.asgi import AsgiFastStream

from chat_history.db import create_engine, database_answers
from chat_history.handlers import register
from chat_history.settings import HistorySettings
from chat_history.sweeper import sweep_forever
from chat_shared.runtime import create_broker, serve, service_app

SERVICE = "history"


def create_app(settings: HistorySettings | None = None) -> AsgiFastStream:
    settings = settings or HistorySettings()
    broker = create_broker(settings, SERVICE)
    engine = create_engine(settings)
    register(broker, settings, engine)
    tasks: list[asyncio.Task[None]] = []

    async def start_sweeper() -> None:
        tasks.append(asyncio.create_task(sweep_forever(broker, engine, settings)))

    async def stop() -> None:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await engine.dispose()

    async def database_ready() -> bool:
        return await database_answers(engine)

    return service_app(
        broker,
        settings,
        ready_checks=[database_ready],
        after_startup=[start_sweeper],
        on_shutdown=[stop],
    )


def run() -> None:
    settings = HistorySettings()
    serve(create_app(settings), settings, SERVICE)
