"""Consumes user messages and hands each to the dispatcher."""

from __future__ import annotations

from faststream.rabbit import RabbitBroker

from chat_contracts.events import UserMessage
from chat_contracts.topology import Topology
from chat_orchestrator.dispatch import Dispatcher
from chat_orchestrator.settings import OrchestratorSettings
from chat_runtime.work import body_of, subscribe_work


def register(broker: RabbitBroker, settings: OrchestratorSettings, dispatcher: Dispatcher) -> None:
    inbox = Topology(settings.broker_prefix).orchestrator_inbox
    prefetch = settings.orchestrator_prefetch
    subscribe_work(broker, inbox, body_of(UserMessage), dispatcher.dispatch, prefetch)
