"""MCP-style tools: a name, a description, a JSON-schema for the input and an async handler.

The registry validates a call's input against the tool's schema before the handler runs, so a
handler only ever sees input of the shape it declared. Tools that need the caller's identity
read it from `ToolContext`, which the orchestrator filled from the verified token.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import jsonschema

from chat_contracts.base import UserRef

JsonObject = dict[str, Any]


@dataclass(frozen=True)
class ToolContext:
    user: UserRef


class ToolInputError(ValueError):
    """The input does not match the tool's schema."""


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    input_schema: JsonObject
    handler: Callable[[JsonObject, ToolContext], Awaitable[JsonObject]]
    # The assistant's answer, written from the tool's output.
    answer: Callable[[JsonObject], str]

    def describe(self) -> JsonObject:
        """The tool as an MCP `tools/list` entry."""
        return {
            "name": self.name,
            "description": self.description,
            "inputSchema": self.input_schema,
        }


class ToolRegistry:
    def __init__(self, tools: list[Tool]) -> None:
        self._tools = {tool.name: tool for tool in tools}
        for tool in tools:
            jsonschema.Draft202012Validator.check_schema(tool.input_schema)

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    async def call(self, name: str, arguments: JsonObject, context: ToolContext) -> JsonObject:
        tool = self._tools.get(name)
        if tool is None:
            raise ToolInputError(f"unknown tool {name!r}")
        errors = sorted(
            jsonschema.Draft202012Validator(tool.input_schema).iter_errors(arguments), key=str
        )
        if errors:
            raise ToolInputError("; ".join(error.message for error in errors))
        return await tool.handler(arguments, context)
