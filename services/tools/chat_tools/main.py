"""Tools service: app factory and entry point."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from chat_shared.runtime import create_broker, serve, service_app
from chat_tools.builtin import default_registry
from chat_tools.handlers import register
from chat_tools.registry import ToolRegistry
from chat_tools.settings import ToolsSettings

SERVICE = "tools"


def create_app(
    settings: ToolsSettings | None = None, registry: ToolRegistry | None = None
) -> AsgiFastStream:
    settings = settings or ToolsSettings()
    broker = create_broker(settings, SERVICE)
    register(broker, settings, registry or default_registry())
    return service_app(broker, settings)


def run() -> None:
    settings = ToolsSettings()
    serve(create_app(settings), settings, SERVICE)
