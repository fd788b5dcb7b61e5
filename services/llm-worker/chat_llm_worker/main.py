"""LLM worker service: app factory and entry point."""

from __future__ import annotations

import logging

from faststream.asgi import AsgiFastStream

from chat_llm_worker.handlers import register
from chat_llm_worker.link import WorkerLink
from chat_llm_worker.providers import Provider, create_provider
from chat_llm_worker.settings import LlmWorkerSettings
from chat_shared.runtime import create_broker, serve, service_app

SERVICE = "llm-worker"
log = logging.getLogger("chat_llm_worker")


def create_app(
    settings: LlmWorkerSettings | None = None, provider: Provider | None = None
) -> AsgiFastStream:
    settings = settings or LlmWorkerSettings()
    provider = provider or create_provider(settings)
    broker = create_broker(settings, SERVICE)
    link = WorkerLink(settings)
    register(broker, settings, provider, link)

    async def announce() -> None:
        log.info("answering with provider %s, model %s", provider.name, provider.model)

    async def link_connected() -> bool:
        return link.connected and await link.control_consuming()

    return service_app(
        broker,
        settings,
        ready_checks=[link_connected],
        on_startup=[link.start],
        after_startup=[announce],
        # Answers in flight finish during the grace period: they still publish on the link.
        after_shutdown=[link.stop],
    )


def run() -> None:
    settings = LlmWorkerSettings()
    serve(create_app(settings), settings, SERVICE)
