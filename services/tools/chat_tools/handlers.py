"""Consumes tool requests and hands each to the tool runner."""

from __future__ import annotations

from faststream.rabbit import RabbitBroker

from chat_contracts.topology import Topology
from chat_contracts.work import ToolRequest
from chat_runtime.work import body_of, subscribe_work
from chat_tools.running import ToolRunner
from chat_tools.settings import ToolsSettings


def register(broker: RabbitBroker, settings: ToolsSettings, runner: ToolRunner) -> None:
    requests = Topology(settings.broker_prefix).tool_requests
    subscribe_work(broker, requests, body_of(ToolRequest), runner.run, settings.tools_prefetch)
