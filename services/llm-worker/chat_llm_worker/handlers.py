"""Consumes LLM requests: each delivery is one attempt of an answer."""

from __future__ import annotations

from faststream.rabbit import RabbitBroker

from chat_contracts.topology import Topology
from chat_contracts.work import LlmRequest
from chat_llm_worker.answering import Answerer
from chat_llm_worker.settings import LlmWorkerSettings
from chat_runtime.work import attempt_of, subscribe_work


def register(broker: RabbitBroker, settings: LlmWorkerSettings, answerer: Answerer) -> None:
    requests = Topology(settings.broker_prefix).llm_requests
    concurrency = settings.llm_concurrency
    subscribe_work(broker, requests, attempt_of(LlmRequest), answerer.answer, concurrency)
