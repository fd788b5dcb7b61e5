"""The worker's own link to the broker (`chat_runtime.link.RawLink`), for what is on the
per-token and per-answer hot path:

- token events, without waiting for their frame to be written, not mandatory (a token for a
  session nobody follows any more is dropped by the broker, not returned to the worker);
- history questions (`StartAnswer`), any number in flight;
- control: the replica's private queue on the `llm-control` fanout, where gateways ask for stops
  and replays (`Generations` answers them); replies go straight to the asker's reply queue.

FastStream keeps the rest: consuming LLM requests and publishing the answers' other events.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import uuid4

from aiormq.abc import DeliveredMessage
from pydantic import ValidationError

from chat_contracts.control import StopRequest, worker_control_adapter
from chat_contracts.events import TokenEvent
from chat_contracts.topology import Topology
from chat_llm_worker.generations import Generations
from chat_runtime.link import RawLink
from chat_runtime.wire import Wire

log = logging.getLogger("chat_llm_worker")

# Answers wait for the link when it is lost: try again soon.
RECONNECT_SECONDS = 1.0


class WorkerLink(RawLink):
    def __init__(self, amqp_url: str, wire: Wire, generations: Generations) -> None:
        replica_id = uuid4().hex[:12]
        topology: Topology = wire.topology
        super().__init__(
            amqp_url,
            wire,
            replica_id,
            topology.llm_control_queue(replica_id),
            topology.llm_worker_replies(replica_id),
            reconnect_seconds=RECONNECT_SECONDS,
        )
        self._generations = generations

    def on_lost(self) -> None:
        # Answers in flight can no longer be acknowledged: their requests are redelivered.
        self._generations.abandon_all()

    async def on_message(self, message: DeliveredMessage) -> None:
        try:
            control = worker_control_adapter.validate_json(message.body)
        except ValidationError:
            log.error("ignored a control message that matches no contract")
            return
        reply = self._generations.on_control(control)
        properties = message.header.properties
        if reply is None or not properties.reply_to:
            return
        try:
            await self.reply(reply, properties.reply_to, properties.correlation_id)
        except Exception:
            # The asker's reply queue is gone or the broker is: it times out and resyncs.
            log.warning("could not reply to a replay request", exc_info=True)

    async def broadcast_stop(self, stop: StopRequest) -> None:
        """Ask every worker replica (this one too) to stop an answer."""
        await self.publish(stop)

    async def publish_token(self, event: TokenEvent, headers: dict[str, Any] | None) -> None:
        """A token event, confirmed, its frame not waited for (`RawLink.publish_unwaited`)."""
        await self.publish_unwaited(event, headers)
