"""Consumes the session events history persists, and answers history questions."""

from __future__ import annotations

import logging

from faststream.rabbit import RabbitBroker
from pydantic import ValidationError

from chat_contracts.events import AnySessionEvent, LiveEvent, session_event_adapter
from chat_contracts.history import history_request_adapter
from chat_contracts.topology import Topology
from chat_history.questions import Questions
from chat_history.settings import HistorySettings
from chat_history.writer import EventWriter
from chat_runtime.declare import queue_for
from chat_runtime.work import Delivery, raw_message, subscribe_work, validated_by

log = logging.getLogger("chat_history")


def register(
    broker: RabbitBroker, settings: HistorySettings, writer: EventWriter, questions: Questions
) -> None:
    topology = Topology(settings.broker_prefix)

    async def write(event: AnySessionEvent) -> None:
        if isinstance(event, LiveEvent):  # not bound to history's queue: only by mistake
            log.warning("ignored an event the history service does not persist")
            return
        await writer.write(event)

    events, prefetch = topology.history_events, settings.history_prefetch
    subscribe_work(broker, events, validated_by(session_event_adapter), write, prefetch)

    @broker.subscriber(queue_for(topology.history_rpc), decoder=raw_message)
    async def on_question(message: Delivery) -> bytes:
        try:
            request = history_request_adapter.validate_json(message.body)
        except ValidationError:
            log.warning("refused a malformed history request")
            return b'{"error":"bad_request"}'
        reply = await questions.answer(request)
        return reply.model_dump_json().encode()
