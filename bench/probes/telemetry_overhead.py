"""What OpenTelemetry costs on the message path: the five services with tracing off, then on.

    uv run python -m bench.probes.telemetry_overhead [--clients 8] [--questions 5] [--rounds 3]
        [--profile]

Each round starts two stacks side by side (OTel off: no OTLP endpoint; OTel on: exporting
every span and metric to a local OTLP receiver) and loads both at the same time with the same
Tier-2 traffic, so that whatever else runs on the machine weighs on both alike: `--clients`
sockets per stack each asking `--questions` questions, the scripted model answering ~160 tokens at
1000 tokens/s. It reads each service's CPU time (user + system, /proc) before and after and
prints CPU per token and per turn and the time to first token seen by the clients (medians of
the rounds). `--profile` also samples the OTel-on stack with py-spy (fetched by `uvx`) and
prints the share of its samples spent in telemetry code itself.

A micro-benchmark of the per-token pieces (stamping an event, the gateway's delivery
observation with a real meter provider) runs first, in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import time
import timeit
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import uuid4

from chat_contracts.events import TokenEvent
from chat_devtools.client import ChatClient
from chat_devtools.infra import delete_topology, fresh_database, unique_prefix
from chat_devtools.otlp import running_otlp_receiver
from chat_devtools.seed import TEST_JWT_SECRET, create_user, token_for
from chat_devtools.stack import SERVICES, Stack

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

    from chat_runtime.timeline import handling, stamp

    event = TokenEvent(
        session_id=uuid4(), correlation_id=uuid4(), message_id=uuid4(), seq=2, text="abcd"
    )
    stamped_event = event.model_copy(update={"emitted_at": time.time()})
    n = 20000
    with handling(queued_at=time.time()):
        copied = min(timeit.repeat(lambda: stamp(event), number=n, repeat=5)) / n
        stamped = min(timeit.repeat(lambda: stamp(stamped_event), number=n, repeat=5)) / n
    dump = min(timeit.repeat(event.model_dump_json, number=n, repeat=5)) / n
    ids = {"session_id": uuid4(), "correlation_id": uuid4(), "message_id": uuid4()}
    build = min(timeit.repeat(lambda: TokenEvent(seq=2, text="abcd", **ids), number=n, repeat=5))
    build_stamped = min(
        timeit.repeat(
            lambda: TokenEvent(seq=2, text="abcd", emitted_at=time.time(), **ids),
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


async def prepare(running: Stack, database_url: str, clients: int) -> list[ChatClient]:
    users = [await create_user(database_url) for _ in range(clients)]
    sockets = [await ChatClient.connect(running.ws_url, token_for(u)) for u in users]
    for socket in sockets:
        await socket.join()
    # One warm-up turn each, not measured.
    await asyncio.gather(*(s.ask("warm up", timeout=60) for s in sockets))
    return sockets


async def measure(running: Stack, sockets: list[ChatClient], questions: int) -> dict[str, float]:
    pids = {name: running.processes[name].pid for name in SERVICES}
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    ttfts: list[float] = []
    tokens = 0

    async def converse(socket: ChatClient) -> None:
        nonlocal tokens
        for index in range(questions):
            sent = time.perf_counter()
            accepted = await socket.send(f"question {index}: summarise what Finnest does")
            first = None
            while True:
                frame = await socket.recv(120)
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
    result["all_ms_per_question"] = (
        result["all_us_per_token"] * tokens / (len(sockets) * questions) / 1000
    )
    ordered = sorted(ttfts)
    result["ttft_p50_ms"] = statistics.median(ordered)
    result["ttft_p95_ms"] = ordered[int(0.95 * (len(ordered) - 1))]
    return result


# Where a sample's innermost frames are telemetry code (not the work it wraps).
TELEMETRY_CODE = re.compile(
    r"\((opentelemetry/|prometheus_client/|faststream/opentelemetry/|chat_runtime/(tracing|telemetry|"
    r"timeline)\.py|chat_gateway/telemetry\.py|google/protobuf/|requests/|urllib3/)"
)
OTHER_CODE = re.compile(
    r"\((chat_|faststream/_internal|aio_pika/|aiormq/|pamqp/|asyncpg/|sqlalchemy/|pydantic|"
    r"asyncio/|uvicorn/|starlette/|fastapi/(routing|dependencies)|websockets/|anyio/)"
)


def telemetry_share(profile: Path) -> float:
    """The share of py-spy samples spent in telemetry code itself."""
    total = spent = 0
    for line in profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        total += int(count)
        for frame in reversed(stack.split(";")):
            if TELEMETRY_CODE.search(frame):
                spent += int(count)
                break
            if OTHER_CODE.search(frame):
                break
    return spent / total if total else 0.0


@contextmanager
def profiling(running: Stack, seconds: int) -> Iterator[dict[str, Path]]:
    """py-spy (run with uvx) on the gateway, llm-worker and history for `seconds`."""
    profiles: dict[str, Path] = {}
    recorders = []
    for name in ("gateway", "llm-worker", "history"):
        profiles[name] = RESULTS / f"py-spy-{name}.txt"
        recorders.append(
            subprocess.Popen(
                [
                    *("uvx", "--from", "py-spy", "py-spy", "record", "--nonblocking", "-f", "raw"),
                    *("-d", str(seconds), "-p", str(running.processes[name].pid)),
                    *("-o", str(profiles[name])),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    time.sleep(1)
    try:
        yield profiles
    finally:
        for recorder in recorders:
            recorder.wait(seconds + 30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--questions", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="py-spy the OTel-on stack")
    parser.add_argument(
        "--on-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment of the OTel-on stack, e.g. OTEL_TRACES_SAMPLER=always_off",
    )
    args = parser.parse_args()
    micro()
    runs: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    shares: dict[str, list[float]] = {}
    with fresh_database(POSTGRES_URL) as databases, running_otlp_receiver() as receiver:
        on_env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_METRIC_EXPORT_INTERVAL": "5000",
            **dict(pair.split("=", 1) for pair in args.on_env),
        }
        for round_ in range(args.rounds):
            with (
                stack(databases.app_url, {}, f"off{round_}") as off,
                stack(databases.app_url, on_env, f"on{round_}") as on,
            ):

                async def both() -> list[dict[str, float]]:
                    off_sockets = await prepare(off, databases.admin_url, args.clients)
                    on_sockets = await prepare(on, databases.admin_url, args.clients)
                    # Both stacks under the same load at the same time: same noise.
                    return list(
                        await asyncio.gather(
                            measure(off, off_sockets, args.questions),
                            measure(on, on_sockets, args.questions),
                        )
                    )

                if args.profile:
                    with profiling(on, 10) as profiles:
                        off_result, on_result = asyncio.run(both())
                    for name, path in profiles.items():
                        shares.setdefault(name, []).append(telemetry_share(path))
                else:
                    off_result, on_result = asyncio.run(both())
            runs["off"].append(off_result)
            runs["on"].append(on_result)
            print(
                f"round {round_ + 1}: {off_result['tokens']:.0f} tokens per stack; CPU per token "
                f"(all services) off {off_result['all_us_per_token']:.1f} µs, "
                f"on {on_result['all_us_per_token']:.1f} µs"
            )
        spans = len(receiver.snapshot())
    keys = [f"{name}_us_per_token" for name in SERVICES]
    keys += ["all_us_per_token", "all_ms_per_question", "ttft_p50_ms", "ttft_p95_ms", "wall_s"]
    print(
        f"\nmedians of {args.rounds} rounds, {args.clients} clients x {args.questions} questions"
        " per stack, both stacks loaded at once:"
    )
    print(f"{'':28}{'OTel off':>10}{'OTel on':>10}{'on/off':>8}")
    for key in keys:
        off_median = statistics.median(r[key] for r in runs["off"])
        on_median = statistics.median(r[key] for r in runs["on"])
        ratio = f"{on_median / off_median:8.2f}" if off_median else f"{'-':>8}"
        print(f"{key:28}{off_median:10.1f}{on_median:10.1f}{ratio}")
    print(f"spans exported by the OTel-on stacks: {spans}")
    if shares:
        print("share of py-spy samples in telemetry code (OTel on), median of rounds:")
        for name, values in shares.items():
            print(f"  {name:12} {statistics.median(values) * 100:5.1f}%")


if __name__ == "__main__":
    main()
