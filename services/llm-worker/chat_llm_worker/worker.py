"""The LLM worker's parts, built once and wired together (the app factory's composition)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from faststream.rabbit import RabbitBroker

from chat_contracts.topology import Topology
from chat_llm_worker.answering import Answerer
from chat_llm_worker.budget import BudgetGate, OutageAllowance
from chat_llm_worker.generations import Generations
from chat_llm_worker.history_client import Breaker, HistoryClient
from chat_llm_worker.link import WorkerLink
from chat_llm_worker.outcomes import AnswerEvents
from chat_llm_worker.providers import Provider
from chat_llm_worker.settings import LlmWorkerSettings
from chat_llm_worker.streaming import Background, CallContext
from chat_llm_worker.turns import TurnTaker
from chat_runtime.publisher import Publisher
from chat_runtime.wire import Wire

SERVICE = "llm-worker"


@dataclass(frozen=True)
class Worker:
    answerer: Answerer
    generations: Generations
    link: WorkerLink

    async def link_ready(self) -> bool:
        return await self.link.consuming()


def assemble(broker: RabbitBroker, settings: LlmWorkerSettings, provider: Provider) -> Worker:
    wire = Wire(Topology(settings.broker_prefix), SERVICE)
    generations = Generations(settings.replay_grace_seconds)
    link = WorkerLink(settings.amqp_url, wire, generations)
    events = AnswerEvents(Publisher(broker, wire))
    price = settings.model_prices[provider.model]
    history = HistoryClient(
        link, settings.history_rpc_timeout_seconds, Breaker(settings.history_breaker_seconds)
    )
    window = (
        asyncio.Semaphore(settings.token_publish_window) if settings.token_publish_window else None
    )
    calls = CallContext(
        provider_name=provider.name,
        price=price,
        link=link,
        events=events,
        progress_interval=settings.progress_interval_seconds,
        window=window,
        background=Background(),
    )
    turns = TurnTaker(settings, price, history, link, events)
    allowance = OutageAllowance(settings.budget_outage_allowance_usd)
    answerer = Answerer(
        settings, provider, generations, turns, BudgetGate(price, allowance, events), calls
    )
    return Worker(answerer, generations, link)
