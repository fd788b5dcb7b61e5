"""The document's channels: one per exchange and routing key a service publishes to (AMQP
`is: routingKey`), one per queue (`is: queue`), and the replies, addressed at run time."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from pydantic import BaseModel

from chat_contracts.topology import Exchange, ExchangeType, Queue
from codegen.asyncapi.broker import Broker
from codegen.asyncapi.words import (
    argument_words,
    binding_words,
    code,
    exchange_words,
    id_part,
    queue_kind,
)

Document = dict[str, Any]

AMQP_BINDING_VERSION: Final = "0.3.0"
PARAMETERS: Final = {
    "session_id": {
        "description": "The session's id (a UUID): every event of a session shares it.",
        "location": "$message.payload#/session_id",
    },
    "replica_id": {
        "description": "One replica of a service: each declares its own exclusive queues, "
        "deleted with its connection.",
    },
}
REPLIES: Final = "replies"


def destination_id(broker: Broker, exchange: Exchange, key: str) -> str:
    short = id_part(exchange.name, broker.topology.prefix)
    return f"{short}.{id_part(key, broker.topology.prefix)}" if key else short


def queue_id(broker: Broker, queue: Queue) -> str:
    return f"queue.{id_part(queue.name, broker.topology.prefix)}"


def _parameters(*templates: str) -> Document:
    found = [name for name in PARAMETERS if any(f"{{{name}}}" in t for t in templates)]
    return {name: {"$ref": f"#/components/parameters/{name}"} for name in found}


def _message_refs(models: tuple[type[BaseModel], ...]) -> Document:
    return {m.__name__: {"$ref": f"#/components/messages/{m.__name__}"} for m in models}


def _exchange_binding(exchange: Exchange) -> Document:
    return {
        "name": exchange.name,
        "type": exchange.type.value if exchange.name else "default",
        "durable": exchange.durable,
        "autoDelete": False,
        "vhost": "/",
    }


def _with_parameters(channel: Document, *templates: str) -> Document:
    parameters = _parameters(*templates)
    return {**channel, "parameters": parameters} if parameters else channel


def destination_channels(broker: Broker) -> Document:
    channels: Document = {}
    for destination in broker.destinations():
        exchange, key = destination.exchange, destination.key
        reached = ", ".join(
            f"{code(q.name)} ({q.consumer})"
            for q in _unique_queues(f.queues for f in destination.flows)
        )
        how = (
            f"routing key {code(key)}"
            if exchange.type is not ExchangeType.FANOUT
            else "no routing key (a fanout: every bound queue gets a copy)"
        )
        channel: Document = {
            # A fanout ignores the routing key: its address is the exchange.
            "address": key if exchange.type is not ExchangeType.FANOUT else exchange.name,
            "title": f"{key or exchange.name} on {exchange.name or 'the default exchange'}",
            "summary": exchange.summary,
            "description": f"Published to {exchange_words(exchange)} with {how}. "
            f"Reaches {reached}.",
            "messages": _message_refs(tuple(f.message for f in destination.flows)),
            "bindings": {
                "amqp": {
                    "is": "routingKey",
                    "exchange": _exchange_binding(exchange),
                    "bindingVersion": AMQP_BINDING_VERSION,
                }
            },
        }
        channels[destination_id(broker, exchange, key)] = _with_parameters(channel, key)
    for exchange in broker.exchanges():
        if not any(d.exchange == exchange for d in broker.destinations()):
            channels[destination_id(broker, exchange, "")] = _broker_fed(broker, exchange)
    return channels


def _broker_fed(broker: Broker, exchange: Exchange) -> Document:
    """An exchange no service publishes to: RabbitMQ does (dead letters)."""
    targets = [q for q in broker.queues if any(b.exchange == exchange for b in q.bindings)]
    sources = _unique_queues(broker.dead_letter_sources(q) for q in targets)
    models = tuple(dict.fromkeys(m for q in targets for m in broker.arriving(q)))
    return {
        "address": exchange.name,
        "title": exchange.name,
        "summary": exchange.summary,
        "description": f"{exchange_words(exchange)}: no service publishes here; RabbitMQ "
        f"does, for the queues {', '.join(code(q.name) for q in sources)}. "
        f"Reaches {', '.join(code(q.name) for q in targets)}.",
        "messages": _message_refs(models),
        "bindings": {
            "amqp": {
                "is": "routingKey",
                "exchange": _exchange_binding(exchange),
                "bindingVersion": AMQP_BINDING_VERSION,
            }
        },
    }


def _unique_queues(groups: Iterable[Iterable[Queue]]) -> tuple[Queue, ...]:
    # By name: a queue's arguments are a dict, so a queue is not hashable.
    by_name = {q.name: q for group in groups for q in group}
    return tuple(by_name.values())


def queue_channels(broker: Broker) -> Document:
    channels: Document = {}
    replies = broker.reply_queues()
    for queue in broker.queues:
        words = [f"Consumed by **{queue.consumer}**.", binding_words(queue)]
        if queue in replies:
            words[1] = (
                "Its replica's reply queue: replies come through the default exchange, by "
                "the name a request gives as `reply_to`."
            )
        words.append(f"A {queue_kind(queue)} queue.")
        if queue.arguments:
            words.append(f"Arguments: {argument_words(queue)}.")
        channel: Document = {
            "address": queue.name,
            "title": f"queue {queue.name}",
            "summary": queue.summary,
            "description": " ".join(words),
            "messages": _message_refs(broker.arriving(queue)),
            "bindings": {
                "amqp": {
                    "is": "queue",
                    "queue": {
                        "name": queue.name,
                        "durable": queue.durable,
                        "exclusive": queue.exclusive,
                        "autoDelete": queue.auto_delete,
                        "vhost": "/",
                    },
                    "bindingVersion": AMQP_BINDING_VERSION,
                }
            },
        }
        amqp = channel["bindings"]["amqp"]
        # AMQP bindings have no words for a queue's own bindings and arguments.
        if queue.bindings:
            amqp["x-bound-to"] = [
                {"exchange": b.exchange.name, "routingKey": b.key} for b in queue.bindings
            ]
        if queue.arguments:
            amqp["x-arguments"] = dict(queue.arguments)
        channels[queue_id(broker, queue)] = _with_parameters(channel, queue.name)
    return channels


def replies_channel(broker: Broker) -> Document:
    replies = tuple(dict.fromkeys(f.reply for f in broker.flows if f.reply is not None))
    return {
        # Known only at run time: the request's `reply_to`.
        "address": None,
        "title": "replies",
        "summary": "A reply, to the queue its request named.",
        "description": "A service that answers a request publishes the reply to the default "
        "exchange with the request's `reply_to` (the asker replica's reply queue) as routing "
        "key, transient, with the request's AMQP `correlation_id`.",
        "messages": _message_refs(replies),
        "bindings": {
            "amqp": {
                "is": "routingKey",
                "exchange": _exchange_binding(Exchange("", ExchangeType.DIRECT)),
                "bindingVersion": AMQP_BINDING_VERSION,
            }
        },
    }
