"""One encoder for everything a service publishes: `message → body, exchange, routing key,
properties`.

Every publish goes through `Wire.encode`, whichever client sends it (FastStream, aio-pika or
aiormq), so a message looks the same on the broker whoever sends it, and a service can publish
only what `chat_contracts.topology` says it publishes (the flows `docs/asyncapi.yaml` is generated
from): a publish that is not declared raises `UndeclaredPublish`, which the tests would meet.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

import aio_pika
import aiormq
from pydantic import BaseModel

from chat_contracts.topology import Topology

CONTENT_TYPE: Final = "application/json"
PERSISTENT: Final = 2
TRANSIENT: Final = 1


class UndeclaredPublish(TypeError):
    """A service published a message its flows in `chat_contracts.topology` do not name."""


class Envelope(NamedTuple):
    """A message as it leaves: its body, where it goes and its AMQP properties (a tuple: one is
    built per token, and a frozen dataclass's init costs microseconds)."""

    body: bytes
    exchange: str
    routing_key: str
    persistent: bool
    correlation_id: str | None

    @property
    def delivery_mode(self) -> int:
        return PERSISTENT if self.persistent else TRANSIENT

    def aio_pika_message(self, headers: dict[str, Any] | None = None) -> aio_pika.Message:
        return aio_pika.Message(
            self.body,
            content_type=CONTENT_TYPE,
            delivery_mode=aio_pika.DeliveryMode(self.delivery_mode),
            correlation_id=self.correlation_id,
            headers=headers,
        )

    def aiormq_properties(
        self, headers: dict[str, Any] | None = None
    ) -> aiormq.spec.Basic.Properties:
        return aiormq.spec.Basic.Properties(
            content_type=CONTENT_TYPE,
            delivery_mode=self.delivery_mode,
            correlation_id=self.correlation_id,
            headers=headers,
        )


class Wire:
    """The encoder of one service: what it may publish, and how each message is sent."""

    def __init__(self, topology: Topology, service: str) -> None:
        self.topology = topology
        self.service = service
        self._allowed = frozenset(
            model for model, publishers in topology.publishers_of().items() if service in publishers
        )

    def encode(self, message: BaseModel) -> Envelope:
        if type(message) not in self._allowed:
            raise UndeclaredPublish(
                f"{self.service} does not publish {type(message).__name__} "
                "(chat_contracts.topology: the flows)"
            )
        route = self.topology.route(message)
        correlation_id = getattr(message, "correlation_id", None)
        return Envelope(
            message.model_dump_json().encode(),
            route.exchange,
            route.routing_key,
            route.persistent,
            str(correlation_id) if correlation_id is not None else None,
        )

    @staticmethod
    def reply(message: BaseModel, reply_to: str, correlation_id: str | None) -> Envelope:
        """A reply to a question: on the default exchange, to the asker's reply queue."""
        return Envelope(message.model_dump_json().encode(), "", reply_to, False, correlation_id)
