"""The AsyncAPI 3.0 document of the broker, as plain data (`document()`).

Channels are of two kinds, as AMQP has them: where a service publishes (an exchange and a routing
key: `is: routingKey`) and where a service consumes (a queue: `is: queue`). A `send` operation
is one service publishing one message; a `receive` operation is one service consuming one
queue. Request/reply operations name the reply messages and the asker's reply queue.

Titles and descriptions come from the models' docstrings and the topology's summaries, so the
document reads as the code does; `info.description` tabulates every exchange and queue.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterable
from typing import Any, Final

from pydantic import BaseModel

import chat_contracts.topology
from chat_contracts.base import CONTRACT_VERSION
from chat_contracts.topology import SERVICES, Exchange, ExchangeType, Flow, Queue, Topology
from codegen.asyncapi.broker import Broker, Destination
from codegen.paths import COMMAND
from codegen.schemas import broker_schemas

Document = dict[str, Any]

ASYNCAPI_VERSION: Final = "3.0.0"
AMQP_BINDING_VERSION: Final = "0.3.0"
CONTENT_TYPE: Final = "application/json"
# AMQP delivery modes.
PERSISTENT: Final = 2
TRANSIENT: Final = 1
# Where a request names its asker's reply queue (an AMQP property; AsyncAPI expressions can
# point at headers or the payload only, and the header is the nearer of the two).
REPLY_TO: Final = "$message.header#/reply_to"
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
# Who consumes the dead letters: people, not a service.
OPERATORS: Final = "operators"


def document(topology: Topology | None = None) -> Document:
    """The whole document, for `topology` (the default prefix `chat` unless told)."""
    broker = Broker(topology or Topology())
    channels = {**_destination_channels(broker), **_queue_channels(broker)}
    channels[REPLIES] = _replies_channel(broker)
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": _info(broker),
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "rabbitmq": {
                "host": "localhost:5672",
                "protocol": "amqp",
                "protocolVersion": "0-9-1",
                "description": "RabbitMQ, at `AMQP_URL` (every service reads it).",
            }
        },
        "channels": channels,
        "operations": {**_send_operations(broker), **_receive_operations(broker)},
        "components": {
            "messages": _messages(broker),
            "schemas": broker_schemas(broker.models()),
            "parameters": PARAMETERS,
        },
    }


# -- words ---------------------------------------------------------------------------------------
def _paragraphs(obj: object) -> list[str]:
    """A docstring's paragraphs, each on one line (`__doc__`: never a parent class's)."""
    text = inspect.cleandoc(obj.__doc__ or "")
    return [" ".join(part.split()) for part in text.split("\n\n") if part.strip()]


def _short(name: str, prefix: str) -> str:
    """A name without the topology's prefix, and without template braces: part of an id."""
    bare = name.removeprefix(f"{prefix}.") if name else "default"
    return bare.replace("{", "").replace("}", "")


def _code(text: str) -> str:
    return f"`{text}`" if text else '`""`'


def _exchange_words(exchange: Exchange) -> str:
    if not exchange.name:
        return "the default exchange"
    return f"{_code(exchange.name)} ({exchange.type.value})"


def _binding_words(queue: Queue) -> str:
    if not queue.bindings:
        return "No binding: reached through the default exchange by its name."
    keys: dict[Exchange, list[str]] = {}
    for binding in queue.bindings:
        keys.setdefault(binding.exchange, []).append(binding.key)
    bound = "; ".join(
        f"{_code(exchange.name)} by {', '.join(_code(key) for key in found)}"
        if exchange.type is not ExchangeType.FANOUT
        else f"{_code(exchange.name)} (fanout)"
        for exchange, found in keys.items()
    )
    return f"Bound to {bound}."


def _queue_kind(queue: Queue) -> str:
    kind = "quorum" if queue.quorum else "classic"
    traits = [
        word
        for word, on in (
            ("durable", queue.durable),
            ("exclusive", queue.exclusive),
            ("auto-delete", queue.auto_delete),
        )
        if on
    ]
    return ", ".join((kind, *traits))


def _arguments(queue: Queue) -> str:
    return ", ".join(f"`{key}: {json.dumps(value)}`" for key, value in queue.arguments.items())


# -- info ----------------------------------------------------------------------------------------
def _info(broker: Broker) -> Document:
    prefix = broker.topology.prefix
    exchanges = "\n".join(
        f"| {_code(e.name)} | {e.type.value} | {'yes' if e.durable else 'no'} | {e.summary} |"
        for e in broker.exchanges()
    )
    queues = "\n".join(
        f"| {_code(q.name)} | {q.consumer} | {_queue_kind(q)} | "
        f"{_binding_words(q).removesuffix('.')} | {q.summary} |"
        for q in broker.queues
    )
    description = f"""\
{inspect.cleandoc(chat_contracts.topology.__doc__ or "")}

Generated by `{COMMAND}` from `chat_contracts` (the topology's flows; the payloads from the
pydantic models): do not edit. Names carry the default prefix `{prefix}` (each test run uses
one of its own). Every message is JSON with `v`, the contract version ({CONTRACT_VERSION}); a
reader ignores the fields it does not know.

## Exchanges

| Exchange | Type | Durable | What goes there |
|---|---|---|---|
{exchanges}

## Queues

| Queue | Consumer | Kind | Bindings | What it holds |
|---|---|---|---|---|
{queues}
"""
    return {
        "title": "Agent chat: the broker",
        "version": str(CONTRACT_VERSION),
        "description": description,
        "tags": [{"name": service} for service in (*SERVICES, OPERATORS)],
    }


# -- channels ------------------------------------------------------------------------------------
REPLIES: Final = "replies"


def _destination_id(broker: Broker, exchange: Exchange, key: str) -> str:
    short = _short(exchange.name, broker.topology.prefix)
    return f"{short}.{_short(key, broker.topology.prefix)}" if key else short


def _queue_id(broker: Broker, queue: Queue) -> str:
    return f"queue.{_short(queue.name, broker.topology.prefix)}"


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


def _destination_channels(broker: Broker) -> Document:
    channels: Document = {}
    for destination in broker.destinations():
        exchange, key = destination.exchange, destination.key
        reached = ", ".join(
            f"{_code(q.name)} ({q.consumer})"
            for q in _unique_queues(f.queues for f in destination.flows)
        )
        how = (
            f"routing key {_code(key)}"
            if exchange.type is not ExchangeType.FANOUT
            else "no routing key (a fanout: every bound queue gets a copy)"
        )
        channel: Document = {
            # A fanout ignores the routing key: its address is the exchange.
            "address": key if exchange.type is not ExchangeType.FANOUT else exchange.name,
            "title": f"{key or exchange.name} on {exchange.name or 'the default exchange'}",
            "summary": exchange.summary,
            "description": f"Published to {_exchange_words(exchange)} with {how}. "
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
        channels[_destination_id(broker, exchange, key)] = _with_parameters(channel, key)
    for exchange in broker.exchanges():
        if not any(d.exchange == exchange for d in broker.destinations()):
            channels[_destination_id(broker, exchange, "")] = _broker_fed(broker, exchange)
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
        "description": f"{_exchange_words(exchange)}: no service publishes here; RabbitMQ "
        f"does, for the queues {', '.join(_code(q.name) for q in sources)}. "
        f"Reaches {', '.join(_code(q.name) for q in targets)}.",
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


def _queue_channels(broker: Broker) -> Document:
    channels: Document = {}
    replies = broker.reply_queues()
    for queue in broker.queues:
        words = [f"Consumed by **{queue.consumer}**.", _binding_words(queue)]
        if queue in replies:
            words[1] = (
                "Its replica's reply queue: replies come through the default exchange, by "
                "the name a request gives as `reply_to`."
            )
        words.append(f"A {_queue_kind(queue)} queue.")
        if queue.arguments:
            words.append(f"Arguments: {_arguments(queue)}.")
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
        channels[_queue_id(broker, queue)] = _with_parameters(channel, queue.name)
    return channels


def _replies_channel(broker: Broker) -> Document:
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


# -- operations ----------------------------------------------------------------------------------
def _channel_ref(channel_id: str) -> Document:
    return {"$ref": f"#/channels/{channel_id}"}


def _in_channel(channel_id: str, models: tuple[type[BaseModel], ...]) -> list[Document]:
    return [{"$ref": f"#/channels/{channel_id}/messages/{m.__name__}"} for m in models]


def _send_operations(broker: Broker) -> Document:
    operations: Document = {}
    for destination in broker.destinations():
        channel_id = _destination_id(broker, destination.exchange, destination.key)
        for flow in destination.flows:
            for service in flow.publishers:
                operations[f"{service}.send.{flow.message.__name__}"] = _send(
                    broker, channel_id, destination, flow, service
                )
    return operations


def _send(
    broker: Broker, channel_id: str, destination: Destination, flow: Flow, service: str
) -> Document:
    persistent = broker.persistent(flow)
    operation: Document = {
        "action": "send",
        "channel": _channel_ref(channel_id),
        "summary": f"{service} publishes {flow.message.__name__}.",
        "description": (
            "Published persistent (delivery mode 2)."
            if persistent
            else "Published transient (delivery mode 1): lost if the broker restarts."
        ),
        "tags": [{"name": service}],
        "messages": _in_channel(channel_id, (flow.message,)),
        "bindings": {
            "amqp": {
                "deliveryMode": PERSISTENT if persistent else TRANSIENT,
                "bindingVersion": AMQP_BINDING_VERSION,
            }
        },
    }
    if flow.reply is not None:
        reply_channel = _queue_id(broker, broker.reply_queue(service))
        operation["reply"] = {
            "address": {
                "location": REPLY_TO,
                "description": f"The AMQP `reply_to` property: {service}'s reply queue.",
            },
            "channel": _channel_ref(reply_channel),
            "messages": _in_channel(reply_channel, (flow.reply,)),
        }
    return operation


def _receive_operations(broker: Broker) -> Document:
    operations: Document = {}
    for queue in broker.queues:
        channel_id = _queue_id(broker, queue)
        operation: Document = {
            "action": "receive",
            "channel": _channel_ref(channel_id),
            "summary": f"{queue.consumer} consumes {queue.name}.",
            "description": queue.summary,
            "tags": [{"name": queue.consumer}],
            "messages": _in_channel(channel_id, broker.arriving(queue)),
        }
        requests = broker.requests(queue)
        if requests:
            asked = ", ".join(f.message.__name__ for f in requests)
            replies = tuple(f.reply for f in requests if f.reply is not None)
            operation["reply"] = {
                "address": {
                    "location": REPLY_TO,
                    "description": f"The AMQP `reply_to` property of the request ({asked}).",
                },
                "channel": _channel_ref(REPLIES),
                "messages": _in_channel(REPLIES, replies),
            }
        operations[f"{queue.consumer}.receive.{channel_id.removeprefix('queue.')}"] = operation
    return operations


# -- messages ------------------------------------------------------------------------------------
def _messages(broker: Broker) -> Document:
    replies_of = {f.reply: f.message for f in broker.flows if f.reply is not None}
    messages: Document = {}
    for model in broker.models():
        name = model.__name__
        paragraphs = _paragraphs(model)
        if model in replies_of:
            paragraphs = [f"The reply to {replies_of[model].__name__}.", *paragraphs]
        message: Document = {"name": name, "title": name}
        if paragraphs:
            message["summary"] = paragraphs[0]
        if len(paragraphs) > 1:
            message["description"] = "\n\n".join(paragraphs[1:])
        message["contentType"] = CONTENT_TYPE
        message["payload"] = {"$ref": f"#/components/schemas/{name}"}
        if "correlation_id" in model.model_fields:
            message["correlationId"] = {
                "description": "Also sent as the AMQP `correlation_id` property.",
                "location": "$message.payload#/correlation_id",
            }
        messages[name] = message
    return messages
