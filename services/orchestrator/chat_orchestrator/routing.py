"""Tier 1 or Tier 2: the cheap decision made for every user message.

A message that is, in its entirety, one of the phrasings in `PATTERNS` goes to a tool and costs
nothing. Anything else, including a sentence that merely contains such a phrase ("who am I to
judge?"), goes to the LLM.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

# (pattern over the normalised text, tool name)
PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"(who ?am ?i|who am i logged in as|what'?s my name|what is my name|"
            r"who is (logged|signed) in|which (user|account) am i( using| logged in as)?|"
            r"show (me )?my (identity|profile|user info))"
        ),
        "who_am_i",
    ),
)

_TRAILING = re.compile(r"[\s?.!]+$")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Route:
    tier: Literal[1, 2]
    tool: str | None = None
    pattern: str | None = None
    input: dict[str, Any] = field(default_factory=dict)


def normalise(text: str) -> str:
    text = text.replace("\u2019", "'").strip().lower()
    text = _TRAILING.sub("", text)
    return _SPACES.sub(" ", text)


def route(text: str) -> Route:
    normalised = normalise(text)
    for pattern, tool in PATTERNS:
        if pattern.fullmatch(normalised):
            return Route(tier=1, tool=tool, pattern=pattern.pattern)
    return Route(tier=2)
