"""Tools service: app factory and entry point."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from chat_contracts.topology import Topology
from chat_runtime.publisher import Publisher
from chat_runtime.service import create_broker, serve, service_app
from chat_runtime.wire import Wire
from chat_tools.builtin import default_registry
from chat_tools.handlers import register
from chat_tools.registry import ToolRegistry
from chat_tools.running import ToolRunner
from chat_tools.settings import ToolsSettings

SERVICE = "tools"


def create_app(
    settings: ToolsSettings | None = None, registry: ToolRegistry | None = None
) -> AsgiFastStream:
    settings = settings or ToolsSettings()
    broker = create_broker(settings, SERVICE)
    publisher = Publisher(broker, Wire(Topology(settings.broker_prefix), SERVICE))
    runner = ToolRunner(registry or default_registry(), publisher, settings.tool_timeout_seconds)
    register(broker, settings, runner)
    return service_app(broker, settings)


def run() -> None:
    settings = ToolsSettings()
    serve(create_app(settings), settings, SERVICE)
