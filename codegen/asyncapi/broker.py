"""The broker as the document describes it, derived from `Topology` and its flows.

The topology names each flow's exchange, routing key, publishers and receiving queues. What the
document also needs is derived here, from the same data, never written down a second time:
where publishers send (one exchange and key), which messages reach each queue, each asker's
reply queue, where a quorum queue's dead letters go, and whether a message is persistent (the
runtime's own `Topology.route`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, TypeVar

from pydantic import BaseModel

from chat_contracts.topology import Exchange, Flow, Queue, Topology

DEAD_LETTER_EXCHANGE: Final = "x-dead-letter-exchange"
# A stand-in for template fields, so that `Topology.route` gives the flow's own template back.
_TEMPLATE_SESSION: Final = "{session_id}"


@dataclass(frozen=True)
class Destination:
    """Where publishers send: one exchange and one routing key (a template), and what goes."""

    exchange: Exchange
    key: str
    flows: tuple[Flow, ...]


T = TypeVar("T")


def _unique(items: Iterable[T]) -> tuple[T, ...]:
    return tuple(dict.fromkeys(items))


class Broker:
    """The flows and queues of one topology, looked at from each exchange and queue."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.flows = topology.flows()
        self.queues = topology.queues()

    def exchanges(self) -> tuple[Exchange, ...]:
        return self.topology.exchanges()

    def destinations(self) -> tuple[Destination, ...]:
        """Every exchange and routing key a service publishes to, in the flows' order."""
        keys = _unique((flow.exchange, flow.routing_key) for flow in self.flows)
        return tuple(
            Destination(
                exchange,
                key,
                tuple(f for f in self.flows if (f.exchange, f.routing_key) == (exchange, key)),
            )
            for exchange, key in keys
        )

    def models(self) -> tuple[type[BaseModel], ...]:
        """Every message on the broker: the flows' and their replies."""
        replies = (flow.reply for flow in self.flows if flow.reply is not None)
        return _unique((*(flow.message for flow in self.flows), *replies))

    def persistent(self, flow: Flow) -> bool:
        """Published persistent? Asked of the runtime's own routing, with a stand-in message."""
        route = self.topology.route(flow.message.model_construct(session_id=_TEMPLATE_SESSION))
        if (route.exchange, route.routing_key) != (flow.exchange.name, flow.routing_key):
            raise ValueError(f"{flow.message.__name__}: Topology.route disagrees with its flow")
        return route.persistent

    # -- queues -------------------------------------------------------------------------------
    def reply_queues(self) -> tuple[Queue, ...]:
        """Queues no flow reaches and no binding feeds: an asker's replies come there by name."""
        reached = {queue.name for flow in self.flows for queue in flow.queues}
        return tuple(q for q in self.queues if not q.bindings and q.name not in reached)

    def reply_queue(self, asker: str) -> Queue:
        found = [q for q in self.reply_queues() if q.consumer == asker]
        if len(found) != 1:
            raise ValueError(f"{asker} asks questions but has {len(found)} reply queues")
        return found[0]

    def requests(self, queue: Queue) -> tuple[Flow, ...]:
        """The request/reply flows whose requests reach `queue`."""
        return tuple(f for f in self.flows if f.reply is not None and queue in f.queues)

    def replies_to(self, queue: Queue) -> tuple[type[BaseModel], ...]:
        """The replies that come to a reply queue: those to its consumer's questions."""
        if queue not in self.reply_queues():
            return ()
        return _unique(
            flow.reply
            for flow in self.flows
            if flow.reply is not None and queue.consumer in flow.publishers
        )

    def dead_letter_sources(self, queue: Queue) -> tuple[Queue, ...]:
        """The queues whose dead letters a binding of `queue` receives."""
        exchanges = {binding.exchange.name for binding in queue.bindings}
        return tuple(q for q in self.queues if q.arguments.get(DEAD_LETTER_EXCHANGE) in exchanges)

    def arriving(self, queue: Queue) -> tuple[type[BaseModel], ...]:
        """Every message that can arrive in `queue`: routed there, a reply, or a dead letter."""
        routed = (flow.message for flow in self.flows if queue in flow.queues)
        dead = (m for source in self.dead_letter_sources(queue) for m in self.arriving(source))
        return _unique((*routed, *self.replies_to(queue), *dead))
