"""Orchestrator service: app factory and entry point."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from chat_orchestrator.handlers import register
from chat_orchestrator.settings import OrchestratorSettings
from chat_shared.runtime import create_broker, serve, service_app

SERVICE = "orchestrator"


def create_app(settings: OrchestratorSettings | None = None) -> AsgiFastStream:
    settings = settings or OrchestratorSettings()
    broker = create_broker(settings, SERVICE)
    register(broker, settings)
    return service_app(broker, settings)


def run() -> None:
    settings = OrchestratorSettings()
    serve(create_app(settings), settings, SERVICE)
