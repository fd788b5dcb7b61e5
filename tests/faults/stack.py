"""What the fault suite's tests and fixtures share: how hard the faults hit, and the stack they
hit (two gateway replicas, two LLM workers)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from chat_devtools.stack import Stack

# `make chaos` sets it: the full run.
FULL = os.environ.get("CHAOS_FULL") == "1"


@dataclass(frozen=True)
class Intensity:
    """How hard the faults hit: CI runs the small one, `make chaos` (CHAOS_FULL=1) the full."""

    sessions: int
    broker_outage_s: float = 5.0
    answer_chars: int = 600  # 172 deltas: ~4.3 s at the rate below
    rate: int = 40  # deltas per second of the scripted model


INTENSITY = Intensity(sessions=30) if FULL else Intensity(sessions=10)


@dataclass
class FaultStack:
    stack: Stack
    prefix: str
    amqp_url: str
    gateways: list[str] = field(default_factory=list)
    workers: list[str] = field(default_factory=list)
    paused: set[str] = field(default_factory=set)

    @property
    def ws_urls(self) -> list[str]:
        return [f"ws://127.0.0.1:{self.stack.ports[g]}/ws" for g in self.gateways]


FaultStackFactory = Callable[..., FaultStack]
