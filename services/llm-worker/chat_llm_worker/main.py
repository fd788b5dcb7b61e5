"""LLM worker service: app factory and entry point."""

from __future__ import annotations

import logging

from faststream.asgi import AsgiFastStream

from chat_llm_worker.handlers import register
from chat_llm_worker.providers import Provider, create_provider
from chat_llm_worker.settings import LlmWorkerSettings
from chat_llm_worker.worker import SERVICE, assemble
from chat_runtime.service import create_broker, serve, service_app

log = logging.getLogger("chat_llm_worker")


def create_app(
    settings: LlmWorkerSettings | None = None, provider: Provider | None = None
) -> AsgiFastStream:
    settings = settings or LlmWorkerSettings()
    provider = provider or create_provider(settings)
    broker = create_broker(settings, SERVICE)
    worker = assemble(broker, settings, provider)
    register(broker, settings, worker.answerer)

    async def announce() -> None:
        log.info("answering with provider %s, model %s", provider.name, provider.model)

    return service_app(
        broker,
        settings,
        ready_checks=[worker.link_ready],
        on_startup=[worker.link.start],
        after_startup=[announce],
        # Answers in flight finish during the grace period: they still publish on the link.
        after_shutdown=[worker.link.stop],
    )


def run() -> None:
    settings = LlmWorkerSettings()
    serve(create_app(settings), settings, SERVICE)
