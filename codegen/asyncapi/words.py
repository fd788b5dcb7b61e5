"""The document's words: names in backticks, docstrings as paragraphs, a queue described."""

from __future__ import annotations

import inspect
import json

from chat_contracts.topology import Exchange, ExchangeType, Queue


def doc_paragraphs(obj: object) -> list[str]:
    """A docstring's paragraphs, each on one line (`__doc__`: never a parent class's)."""
    text = inspect.cleandoc(obj.__doc__ or "")
    return [" ".join(part.split()) for part in text.split("\n\n") if part.strip()]


def id_part(name: str, prefix: str) -> str:
    """A name without the topology's prefix, and without template braces: part of an id."""
    bare = name.removeprefix(f"{prefix}.") if name else "default"
    return bare.replace("{", "").replace("}", "")


def code(text: str) -> str:
    return f"`{text}`" if text else '`""`'


def exchange_words(exchange: Exchange) -> str:
    if not exchange.name:
        return "the default exchange"
    return f"{code(exchange.name)} ({exchange.type.value})"


def binding_words(queue: Queue) -> str:
    if not queue.bindings:
        return "No binding: reached through the default exchange by its name."
    keys: dict[Exchange, list[str]] = {}
    for binding in queue.bindings:
        keys.setdefault(binding.exchange, []).append(binding.key)
    bound = "; ".join(
        f"{code(exchange.name)} by {', '.join(code(key) for key in found)}"
        if exchange.type is not ExchangeType.FANOUT
        else f"{code(exchange.name)} (fanout)"
        for exchange, found in keys.items()
    )
    return f"Bound to {bound}."


def queue_kind(queue: Queue) -> str:
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


def argument_words(queue: Queue) -> str:
    return ", ".join(f"`{key}: {json.dumps(value)}`" for key, value in queue.arguments.items())
