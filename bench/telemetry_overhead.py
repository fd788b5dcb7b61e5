"""What OpenTelemetry costs on the message path: the five services with tracing off, then on.

    uv run python -m bench.telemetry_overhead [--clients 8] [--turns 5] [--rounds 2]

Each round starts the stack twice (OTel off: no OTLP endpoint; OTel on: exporting every span
and metric to a local OTLP receiver) and sends the same Tier-2 load: `--clients` sockets each
asking `--turns` questions, the scripted model answering ~190 tokens at 1000 tokens/s. It
reads each service's CPU time (user + system, /proc) before and after the load and prints CPU
per token and per turn, and the time to first token seen by the clients. Rounds alternate off
and on, and the medians are printed: the machine is shared, so compare the two columns of one
run, not figures across runs.

A micro-benchmark of the per-token pieces (stamping an event, the gateway's delivery
observation with a real meter provider) runs first, in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import timeit
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import uuid4

from chat_shared.contracts import TokenEvent
from tests.support.client import ChatClient
from tests.support.infra import delete_topology, fresh_database, unique_prefix
from tests.support.otlp import running_otlp_receiver
from tests.support.seed import TEST_JWT_SECRET, create_user, token_for
from tests.support.stack import SERVICES, Stack

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
POSTGRES_URL = os.environ.get(
    "DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
# Logs of the benchmark stacks, beside the tests' (ignored by git).
RESULTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "bench"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def micro() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import CollectorRegistry

    from chat_shared.timeline import stamp, turn

    event = TokenEvent(
        session_id=uuid4(), correlation_id=uuid4(), message_id=uuid4(), seq=2, text="abcd"
    )
    stamped_event = event.model_copy(update={"emitted_at": time.time()})
    n = 20000
    with turn(queued_at=time.time()):
        copied = min(timeit.repeat(lambda: stamp(event), number=n, repeat=5)) / n
        stamped = min(timeit.repeat(lambda: stamp(stamped_event), number=n, repeat=5)) / n
    dump = min(timeit.repeat(event.model_dump_json, number=n, repeat=5)) / n
    ids = {"session_id": uuid4(), "correlation_id": uuid4(), "message_id": uuid4()}
    build = min(
        timeit.repeat(lambda: TokenEvent(seq=2, text="abcd", **ids), number=n, repeat=5)  # type: ignore[arg-type]
    )
    build_stamped = min(
        timeit.repeat(
            lambda: TokenEvent(seq=2, text="abcd", emitted_at=time.time(), **ids),  # type: ignore[arg-type]
            number=n,
            repeat=5,
        )
    )

    from opentelemetry.exporter.prometheus import PrometheusMetricReader

    provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=CollectorRegistry())])
    histogram = provider.get_meter("bench").create_histogram("lag", unit="s")
    record = min(timeit.repeat(lambda: histogram.record(0.001), number=n, repeat=5)) / n
    counter = provider.get_meter("bench").create_counter("n")
    add = min(timeit.repeat(lambda: counter.add(1), number=n, repeat=5)) / n
    print("per-token pieces (this process, best of 5):")
    print(f"  build a token event                  {build / n * 1e6:6.2f} µs")
    print(f"  build it with its emit time          {build_stamped / n * 1e6:6.2f} µs")
    print(f"  stamp() a token event built with it  {stamped * 1e6:6.2f} µs")
    print(f"  stamp() one built without (a copy)   {copied * 1e6:6.2f} µs")
    print(f"  for scale: serialise a token event   {dump * 1e6:6.2f} µs")
    print(f"  histogram record (delivery lag)      {record * 1e6:6.2f} µs")
    print(f"  for scale: counter add               {add * 1e6:6.2f} µs")


@contextmanager
def stack(database_url: str, env: dict[str, str], name: str) -> Iterator[Stack]:
    prefix = unique_prefix()
    log_dir = RESULTS / "logs" / f"{name}-{prefix}"
    log_dir.mkdir(parents=True, exist_ok=True)
    running = Stack(
        env={
            "APP_ENV": "test",
            "AMQP_URL": AMQP_URL,
            "DATABASE_URL": database_url,
            "BROKER_PREFIX": prefix,
            "JWT_SECRET": TEST_JWT_SECRET,
            "LLM_PROVIDER": "scripted",
            "SCRIPTED_TTFT_MS": "50",
            "SCRIPTED_TOKENS_PER_SECOND": "1000",
            "LOG_LEVEL": "INFO",
            **env,
        },
        log_dir=log_dir,
    )
    running.start_all()
    try:
        yield running
    finally:
        running.stop_all()
        asyncio.run(delete_topology(AMQP_URL, prefix))


async def load(running: Stack, database_url: str, clients: int, turns: int) -> dict[str, float]:
    users = [await create_user(database_url) for _ in range(clients)]
    sockets = [await ChatClient.connect(running.ws_url, token_for(u)) for u in users]
    for socket in sockets:
        await socket.join()
    # One warm-up turn each, not measured.
    await asyncio.gather(*(s.ask("warm up", timeout=60) for s in sockets))
    pids = {name: running.processes[name].pid for name in SERVICES}
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    ttfts: list[float] = []
    tokens = 0

    async def converse(socket: ChatClient) -> None:
        nonlocal tokens
        for index in range(turns):
            sent = time.perf_counter()
            accepted = await socket.send(f"question {index}: summarise what Finnest does")
            first = None
            while True:
                frame = await socket.recv(60)
                if frame.get("message_id") != accepted["reply_message_id"]:
                    continue
                if first is None:
                    first = time.perf_counter()
                    ttfts.append((first - sent) * 1000)
                if frame["type"] == "token":
                    tokens += 1
                if frame["type"] in ("complete", "error"):
                    assert frame["type"] == "complete", frame
                    break

    started = time.perf_counter()
    await asyncio.gather(*(converse(s) for s in sockets))
    wall = time.perf_counter() - started
    after = {name: cpu_seconds(pid) for name, pid in pids.items()}
    for socket in sockets:
        await socket.close()
    result: dict[str, float] = {"tokens": tokens, "wall_s": wall}
    for name in SERVICES:
        result[f"{name}_us_per_token"] = (after[name] - before[name]) / tokens * 1e6
    result["all_us_per_token"] = sum(result[f"{n}_us_per_token"] for n in SERVICES)
    result["all_ms_per_turn"] = result["all_us_per_token"] * tokens / (clients * turns) / 1000
    ordered = sorted(ttfts)
    result["ttft_p50_ms"] = statistics.median(ordered)
    result["ttft_p95_ms"] = ordered[int(0.95 * (len(ordered) - 1))]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    micro()
    runs: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    with fresh_database(POSTGRES_URL) as database_url, running_otlp_receiver() as receiver:
        for round_ in range(args.rounds):
            for mode in ("off", "on"):
                env = (
                    {
                        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                        "OTEL_METRIC_EXPORT_INTERVAL": "5000",
                    }
                    if mode == "on"
                    else {}
                )
                with stack(database_url, env, f"{mode}{round_}") as running:
                    result = asyncio.run(load(running, database_url, args.clients, args.turns))
                runs[mode].append(result)
                print(
                    f"round {round_ + 1} OTel {mode:3}: {result['tokens']:.0f} tokens, "
                    f"{result['all_us_per_token']:.1f} µs CPU/token (all services), "
                    f"TTFT p50 {result['ttft_p50_ms']:.1f} ms"
                )
        spans = len(receiver.snapshot())
    keys = [f"{name}_us_per_token" for name in SERVICES]
    keys += ["all_us_per_token", "all_ms_per_turn", "ttft_p50_ms", "ttft_p95_ms", "wall_s"]
    print(f"\nmedians of {args.rounds} rounds, {args.clients} clients x {args.turns} turns:")
    print(f"{'':28}{'OTel off':>10}{'OTel on':>10}{'on/off':>8}")
    for key in keys:
        off = statistics.median(r[key] for r in runs["off"])
        on = statistics.median(r[key] for r in runs["on"])
        ratio = f"{on / off:8.2f}" if off else f"{'-':>8}"
        print(f"{key:28}{off:10.1f}{on:10.1f}{ratio}")
    print(f"spans exported while on: {spans}")


if __name__ == "__main__":
    main()
