"""docs/asyncapi.yaml is a valid AsyncAPI 3.0 document that names the whole broker.

The schema is the official one, vendored: `tests/deploy/schemas/asyncapi-3.0.0.json` is
`schemas/3.0.0.json` of the npm package `@asyncapi/specs` 6.11.1, copied unchanged (sha256
d4571a420e6ffb7fcc7066c95a6db1202f299a3c51daa103d0706bf30f95e626). Its `$ref`s name the
`$id`s of its own `definitions`, resolved from the file itself: nothing is fetched.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest
import yaml
from referencing import Registry
from referencing.jsonschema import DRAFT7

from chat_contracts.topology import Topology
from codegen.asyncapi.document import document
from codegen.asyncapi.yaml_text import to_yaml
from codegen.paths import ASYNCAPI_YAML, REPO

SCHEMA = json.loads(
    (REPO / "tests" / "deploy" / "schemas" / "asyncapi-3.0.0.json").read_text(encoding="utf-8")
)
_REGISTRY: Registry[Any] = (
    Registry().with_resource(SCHEMA["$id"], DRAFT7.create_resource(SCHEMA)).crawl()
)
VALIDATOR = jsonschema.Draft7Validator(SCHEMA, registry=_REGISTRY)


def validate(doc: dict[str, Any]) -> None:
    error = jsonschema.exceptions.best_match(VALIDATOR.iter_errors(doc))
    if error is not None:
        raise error


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    """The document as written to the file: through YAML and back."""
    loaded: dict[str, Any] = yaml.safe_load(to_yaml(document(), "test"))
    return loaded


def test_the_document_is_valid_asyncapi_3(doc: dict[str, Any]) -> None:
    assert doc["asyncapi"] == "3.0.0"
    validate(doc)


def test_the_committed_document_is_valid_asyncapi_3() -> None:
    validate(yaml.safe_load((REPO / ASYNCAPI_YAML).read_text(encoding="utf-8")))


def test_a_misspelt_field_fails_the_check(doc: dict[str, Any]) -> None:
    broken = copy.deepcopy(doc)
    channel = broken["channels"]["work.tool.request"]
    channel["adress"] = channel.pop("address")
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)
    broken = copy.deepcopy(doc)
    broken["channels"]["work.tool.request"]["bindings"]["amqp"]["exchange"]["type"] = "topik"
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in _refs(item)]
    return []


def _resolve(doc: dict[str, Any], ref: str) -> object:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        key = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and key in node, f"{ref}: no {key!r}"
        node = node[key]
    return node


def test_every_reference_points_into_the_document(doc: dict[str, Any]) -> None:
    # The JSON schema does not follow `$ref`s: a dangling one would pass it.
    refs = _refs(doc)
    assert len(refs) > 100
    for ref in refs:
        _resolve(doc, ref)


def test_every_exchange_queue_and_flow_is_in_it(doc: dict[str, Any]) -> None:
    topology = Topology()
    amqp = [channel["bindings"]["amqp"] for channel in doc["channels"].values()]
    exchanges = {b["exchange"]["name"]: b["exchange"] for b in amqp if b["is"] == "routingKey"}
    for exchange in topology.exchanges():
        assert exchanges[exchange.name]["type"] == exchange.type.value
        assert exchanges[exchange.name]["durable"] is exchange.durable
    queues = {b["queue"]["name"]: b for b in amqp if b["is"] == "queue"}
    assert set(queues) == {queue.name for queue in topology.queues()}
    for queue in topology.queues():
        amqp = queues[queue.name]
        bound = [(b["exchange"], b["routingKey"]) for b in amqp.get("x-bound-to", [])]
        assert bound == [(b.exchange.name, b.key) for b in queue.bindings]
        assert amqp.get("x-arguments", {}) == dict(queue.arguments)
        assert (amqp["queue"]["durable"], amqp["queue"]["exclusive"]) == (
            queue.durable,
            queue.exclusive,
        )

    operations = doc["operations"]
    for flow in topology.flows():
        for service in flow.publishers:
            send = operations[f"{service}.send.{flow.message.__name__}"]
            assert send["action"] == "send"
            channel = _resolve(doc, send["channel"]["$ref"])
            assert isinstance(channel, dict)
            key = channel["address"] if flow.exchange.type.value != "fanout" else ""
            assert key == flow.routing_key
            assert ("reply" in send) is (flow.reply is not None)
            if flow.reply is not None:
                replies = [_resolve(doc, m["$ref"]) for m in send["reply"]["messages"]]
                assert replies == [{"$ref": f"#/components/messages/{flow.reply.__name__}"}]
        for queue in flow.queues:
            receive = next(
                op
                for op in operations.values()
                if op["action"] == "receive"
                and _resolve(doc, op["channel"]["$ref"]) == doc["channels"][_queue_id(queue.name)]
            )
            assert [{"name": queue.consumer}] == receive["tags"]
            names = {m["$ref"].rsplit("/", 1)[-1] for m in receive["messages"]}
            assert flow.message.__name__ in names


def _queue_id(name: str) -> str:
    return "queue." + name.removeprefix("chat.").replace("{", "").replace("}", "")


def test_a_session_event_says_which_session_its_routing_key_names(doc: dict[str, Any]) -> None:
    channel = doc["channels"]["events.session.session_id.token"]
    assert channel["address"] == "session.{session_id}.token"
    parameter = _resolve(doc, channel["parameters"]["session_id"]["$ref"])
    assert parameter == {
        "description": "The session's id (a UUID): every event of a session shares it.",
        "location": "$message.payload#/session_id",
    }
    token = doc["components"]["schemas"]["TokenEvent"]
    assert token["properties"]["deltas"] == {"default": 1, "minimum": 1, "type": "integer"}
    assert token["properties"]["emitted_at"]["type"] == ["number", "null"]
