"""CPU per call of the two steps the wire's shape adds to every token (`python -m
bench.probes.wire_cost [--calls 50000]`): the worker's encoder (`Wire.encode`, beside the bare
dump and routing key it replaced) and the gateway's frame mapping (`frames.to_frame` and
`outgoing`). One process, no broker; rounds alternate, medians of 3."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from uuid import uuid4

from chat_contracts.events import TokenEvent, session_event_adapter
from chat_contracts.topology import Topology, session_key
from chat_gateway.frames import outgoing, to_frame
from chat_runtime.wire import Wire


def _per_call(work: Callable[[], object], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        work()
    return (time.perf_counter() - started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=50_000)
    args = parser.parse_args()
    wire = Wire(Topology("chat"), "llm-worker")
    token = TokenEvent(
        session_id=uuid4(),
        correlation_id=uuid4(),
        message_id=uuid4(),
        seq=2,
        text="abcd",
        emitted_at=time.time(),
    )
    body = token.model_dump_json().encode()
    steps: dict[str, Callable[[], object]] = {
        "dump + routing key (before)": lambda: (
            token.model_dump_json().encode(),
            session_key(token.session_id, token.type),
        ),
        "Wire.encode": lambda: wire.encode(token),
        "validate_json (gateway)": lambda: session_event_adapter.validate_json(body),
        "to_frame": lambda: to_frame(token),
        "outgoing (frame + dump)": lambda: outgoing(token),
    }
    rounds: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(3):
        for name, work in steps.items():
            rounds[name].append(_per_call(work, args.calls))
    for name, figures in rounds.items():
        print(f"{name:30} {statistics.median(figures):6.2f} µs per call")


if __name__ == "__main__":
    main()
