"""JSON schemas of the wire, from the pydantic models of `chat_contracts`.

- The browser protocol, as one schema: client frames in validation mode (what the gateway
  accepts), server frames in serialization mode (what it sends: every field, defaults included).
- Broker messages in validation mode: what a reader accepts (a field with a default may be
  missing from an older sender's message), with `$ref`s into AsyncAPI's `components/schemas`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Final

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, models_json_schema
from pydantic_core import CoreSchema

from chat_contracts.protocol import client_frame_adapter, server_frame_adapter

JsonSchema = dict[str, Any]

CLIENT_FRAME: Final = "ClientFrame"
SERVER_FRAME: Final = "ServerFrame"
COMPONENTS_REF: Final = "#/components/schemas/{model}"


class _UntitledFields(GenerateJsonSchema):
    """Pydantic titles every field after its name ("Message Id"). json-schema-to-typescript
    would declare a type of each such title, and in a document it only repeats the name."""

    def field_title_should_be_set(self, schema: CoreSchema) -> bool:
        return False


def protocol_schema() -> JsonSchema:
    """Every frame of the browser protocol; the root is `ClientFrame | ServerFrame`."""
    inputs: list[tuple[str, JsonSchemaMode, TypeAdapter[Any]]] = [
        (CLIENT_FRAME, "validation", client_frame_adapter),
        (SERVER_FRAME, "serialization", server_frame_adapter),
    ]
    unions, definitions = TypeAdapter.json_schemas(
        inputs, ref_template="#/$defs/{model}", schema_generator=_UntitledFields
    )
    defs: JsonSchema = dict(definitions["$defs"])
    defs[CLIENT_FRAME] = {
        "title": CLIENT_FRAME,
        "description": "A frame the page sends.",
        **unions[(CLIENT_FRAME, "validation")],
    }
    defs[SERVER_FRAME] = {
        "title": SERVER_FRAME,
        "description": "A frame the gateway sends.",
        **unions[(SERVER_FRAME, "serialization")],
    }
    _require_every_field_sent(defs)
    return {
        "title": "Frame",
        "description": "Any frame of the protocol, either way.",
        "anyOf": [{"$ref": f"#/$defs/{CLIENT_FRAME}"}, {"$ref": f"#/$defs/{SERVER_FRAME}"}],
        "$defs": defs,
    }


def server_frame_types(schema: JsonSchema) -> tuple[str, ...]:
    """The `type` of every server frame, in the union's order."""
    mapping: dict[str, str] = schema["$defs"][SERVER_FRAME]["discriminator"]["mapping"]
    return tuple(mapping)


def _refs(node: object) -> Iterator[str]:
    """The names of the definitions a schema refers to, anywhere inside it."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref.rsplit("/", 1)[-1]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _require_every_field_sent(defs: JsonSchema) -> None:
    """The gateway writes every field of a frame (`model_dump_json()`), nested models included.
    A model inside a frame whose defaulted fields the schema calls optional would make the
    page's types looser than the wire: refuse it, naming the model to fix."""
    seen: set[str] = set()
    pending = [SERVER_FRAME]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        schema = defs[name]
        optional = sorted(set(schema.get("properties", {})) - set(schema.get("required", ())))
        if optional:
            raise ValueError(
                f"{name} is sent to the page but its fields {optional} are optional in its "
                "serialization schema: give it "
                "`model_config = ConfigDict(json_schema_serialization_defaults_required=True)`"
            )
        pending.extend(_refs(schema))


def broker_schemas(models: Sequence[type[BaseModel]]) -> JsonSchema:
    """Every model's schema, and the schemas they use, by name; they refer to each other as
    `#/components/schemas/<name>`."""
    keyed, definitions = models_json_schema(
        [(model, "validation") for model in models],
        ref_template=COMPONENTS_REF,
        schema_generator=_UntitledFields,
    )
    for (model, _mode), schema in keyed.items():
        # Two models of one name would be renamed by pydantic; the document names each message
        # after its class, so that would need a decision first.
        if schema["$ref"] != COMPONENTS_REF.format(model=model.__name__):
            raise ValueError(f"{model.__name__} is named {schema['$ref']} among the schemas")
    return {name: _asyncapi_schema(schema) for name, schema in definitions["$defs"].items()}


def _asyncapi_schema(node: Any) -> Any:
    """A pydantic schema as an AsyncAPI Schema Object (JSON Schema draft 07 and a few words).

    - Pydantic writes OpenAPI's `discriminator` object on tagged unions; AsyncAPI's
      `discriminator` is a property name with another meaning (inheritance). The `oneOf` of
      `const` tags says it all already, so the mapping is kept as an extension for readers.
    - `X | None` (`anyOf: [X, {type: null}]`) becomes `type: [X's type, "null"]` where that
      means the same (X is a plain type, no `enum`, `const` or `$ref`): the rendered document
      then reads "string | null" instead of two anyOf rows.
    """
    if isinstance(node, list):
        return [_asyncapi_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {
        ("x-discriminator" if key == "discriminator" else key): _asyncapi_schema(value)
        for key, value in node.items()
    }
    return _nullable_as_type(converted)


_NULL: Final = {"type": "null"}
_NOT_MERGEABLE: Final = frozenset({"$ref", "enum", "const", "anyOf", "oneOf", "allOf"})


def _nullable_as_type(schema: JsonSchema) -> JsonSchema:
    options = schema.get("anyOf")
    if not isinstance(options, list) or len(options) != 2 or _NULL not in options:
        return schema
    other = options[1] if options[0] == _NULL else options[0]
    if not isinstance(other.get("type"), str) or _NOT_MERGEABLE & set(other):
        return schema
    if set(other) & (set(schema) - {"anyOf"}):
        return schema
    rest = {key: value for key, value in schema.items() if key != "anyOf"}
    return {**other, **rest, "type": [other["type"], "null"]}
