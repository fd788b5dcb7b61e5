"""Orchestrator service: app factory and entry point."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from chat_contracts.topology import Topology
from chat_orchestrator.dispatch import Dispatcher
from chat_orchestrator.handlers import register
from chat_orchestrator.settings import OrchestratorSettings
from chat_runtime.publisher import Publisher
from chat_runtime.service import create_broker, serve, service_app
from chat_runtime.wire import Wire

SERVICE = "orchestrator"


def create_app(settings: OrchestratorSettings | None = None) -> AsgiFastStream:
    settings = settings or OrchestratorSettings()
    broker = create_broker(settings, SERVICE)
    wire = Wire(Topology(settings.broker_prefix), SERVICE)
    register(broker, settings, Dispatcher(Publisher(broker, wire)))
    return service_app(broker, settings)


def run() -> None:
    settings = OrchestratorSettings()
    serve(create_app(settings), settings, SERVICE)
