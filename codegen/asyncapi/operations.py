"""The document's operations: a `send` per service and message it publishes, a `receive` per
queue and its consumer, with the replies of request/reply."""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel

from chat_contracts.topology import Flow
from codegen.asyncapi.broker import Broker
from codegen.asyncapi.channels import AMQP_BINDING_VERSION, REPLIES, destination_id, queue_id

Document = dict[str, Any]

# AMQP delivery modes.
PERSISTENT: Final = 2
TRANSIENT: Final = 1
# Where a request names its asker's reply queue (an AMQP property; AsyncAPI expressions can
# point at headers or the payload only, and the header is the nearer of the two).
REPLY_TO: Final = "$message.header#/reply_to"


def _channel_ref(channel_id: str) -> Document:
    return {"$ref": f"#/channels/{channel_id}"}


def _in_channel(channel_id: str, models: tuple[type[BaseModel], ...]) -> list[Document]:
    return [{"$ref": f"#/channels/{channel_id}/messages/{m.__name__}"} for m in models]


def send_operations(broker: Broker) -> Document:
    operations: Document = {}
    for destination in broker.destinations():
        channel_id = destination_id(broker, destination.exchange, destination.key)
        for flow in destination.flows:
            for service in flow.publishers:
                operations[f"{service}.send.{flow.message.__name__}"] = _send(
                    broker, channel_id, flow, service
                )
    return operations


def _send(broker: Broker, channel_id: str, flow: Flow, service: str) -> Document:
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
        reply_channel = queue_id(broker, broker.reply_queue(service))
        operation["reply"] = {
            "address": {
                "location": REPLY_TO,
                "description": f"The AMQP `reply_to` property: {service}'s reply queue.",
            },
            "channel": _channel_ref(reply_channel),
            "messages": _in_channel(reply_channel, (flow.reply,)),
        }
    return operation


def receive_operations(broker: Broker) -> Document:
    operations: Document = {}
    for queue in broker.queues:
        channel_id = queue_id(broker, queue)
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
