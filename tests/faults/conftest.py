"""The fault-injection suite's fixtures: a stack with two gateway replicas and two LLM workers,
users, and the per-fault table printed at the end of the run (docs/faults.md)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from chat_contracts.base import UserRef
from chat_contracts.topology import Topology
from chat_devtools.infra import Databases, delete_topology, unique_prefix
from chat_devtools.seed import TEST_JWT_SECRET, create_user, token_for
from chat_devtools.stack import Stack
from tests.faults.stack import FULL, INTENSITY, FaultStack, FaultStackFactory
from tests.support.chaos import (
    ChaosNode,
    chaos_node,
    rabbitmq_tools_missing,
    wait_all_ready,
    wait_drained,
)
from tests.support.faultload import FaultReport, format_table
from tests.support.paths import ARTIFACTS

REPORTS: list[FaultReport] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    skip = pytest.mark.skip(reason="the full fault run: `make chaos` (CHAOS_FULL=1)")
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.chaos)
            if item.get_closest_marker("chaos_full") and not FULL:
                item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not REPORTS:
        return
    terminalreporter.section("faults: tokens generated vs delivered (deltas)")
    for line in format_table(REPORTS).splitlines():
        terminalreporter.write_line(line)


@pytest.fixture
def record() -> Callable[[FaultReport], None]:
    """Keep a fault's figures for the table (and print its line now, for `-s`)."""

    def keep(report: FaultReport) -> None:
        REPORTS.append(report)
        print("\n" + format_table([report]))

    return keep


# The suite's one stack: heartbeats every second and a socket silent for 3 s closed (every tab of
# the suite pings every second), progress reports every second, the worker's history breaker
# opening for 3 s, a little budget for answers while history is down.
SETTINGS = {
    "HEARTBEAT_SECONDS": "1",
    "CLIENT_SILENCE_SECONDS": "3",
    "PROGRESS_INTERVAL_SECONDS": "1",
    "HISTORY_BREAKER_SECONDS": "3",
    "BUDGET_OUTAGE_ALLOWANCE_USD": "1",
    # Room for every session's two answers of the busy fault (60 in the full run) on the two
    # workers: with less, a second message waits in RabbitMQ for a free slot, where the turn
    # is free by the time a worker takes it and no `queued` is due.
    "LLM_CONCURRENCY": "32",
}


@contextlib.contextmanager
def fault_stacks(amqp_url: str, databases: Databases, label: str) -> Iterator[FaultStackFactory]:
    """Start the services as processes: `gateways` gateway replicas (gateway-a, gateway-b, ...)
    and `workers` LLM workers, with the suite's settings plus `overrides`; stop them after."""
    started: list[FaultStack] = []

    def start(
        *, gateways: int = 2, workers: int = 2, broker_url: str | None = None, **overrides: str
    ) -> FaultStack:
        prefix = unique_prefix()
        log_dir = ARTIFACTS / "logs" / f"faults-{label[:60]}-{prefix}"
        log_dir.mkdir(parents=True, exist_ok=True)
        url = broker_url or amqp_url
        env = {
            "APP_ENV": "test",
            "AMQP_URL": url,
            "DATABASE_URL": databases.app_url,
            "BROKER_PREFIX": prefix,
            "JWT_SECRET": TEST_JWT_SECRET,
            "LLM_PROVIDER": "scripted",
            "SCRIPTED_TTFT_MS": "100",
            "SCRIPTED_TOKENS_PER_SECOND": str(INTENSITY.rate),
            "LOG_LEVEL": "INFO",
            # Every session is a user of its own; a fault test sends more than a person would.
            "MESSAGES_PER_MINUTE": "600",
            "HISTORY_RPC_TIMEOUT_SECONDS": "2",
            **overrides,
        }
        stack = Stack(env=env, log_dir=log_dir, services=())
        fault = FaultStack(stack=stack, prefix=prefix, amqp_url=url)
        started.append(fault)
        for name in ("history", "orchestrator", "tools"):
            stack.start(name)
        for i in range(gateways):
            fault.gateways.append(f"gateway-{'abcdef'[i]}")
            stack.start(fault.gateways[-1], service="gateway")
        for i in range(workers):
            fault.workers.append(f"llm-worker-{'abcdef'[i]}")
            stack.start(fault.workers[-1], service="llm-worker")
        stack.services = tuple(stack.processes)
        stack.wait_ready(timeout=90)
        return fault

    try:
        yield start
    finally:
        for fault in started:
            for process in fault.stack.processes.values():
                if process.poll() is None:
                    # A paused process would not act on SIGTERM.
                    with contextlib.suppress(ProcessLookupError):
                        process.send_signal(signal.SIGCONT)
            fault.stack.stop_all()
            with contextlib.suppress(Exception):
                asyncio.run(delete_topology(fault.amqp_url, fault.prefix))


@pytest.fixture(scope="module")
def suite_broker() -> Iterator[ChaosNode | None]:
    """A RabbitMQ node of the suite's own (to restart it mid-stream without disturbing other
    tests), or None where one cannot be started: the broker fault is then skipped."""
    if rabbitmq_tools_missing():
        yield None
        return
    with chaos_node() as node:
        yield node


@pytest.fixture(scope="module")
def shared_stack(
    amqp_url: str, databases: Databases, suite_broker: ChaosNode | None
) -> Iterator[FaultStack]:
    """One stack for the whole suite: starting seven processes takes longer than most faults,
    so each test heals what it broke (see `stack`)."""
    with fault_stacks(amqp_url, databases, "suite") as start:
        yield start(broker_url=suite_broker.amqp_url if suite_broker else None, **SETTINGS)


@pytest.fixture
async def stack(shared_stack: FaultStack) -> AsyncIterator[FaultStack]:
    """The suite's stack, every process up and ready before and after the test: a paused one
    is resumed, a killed one started again (on its port)."""
    await heal(shared_stack)
    yield shared_stack
    await heal(shared_stack)


async def heal(fault: FaultStack) -> None:
    """Every process up and ready, and history caught up (a backlog left by one fault would
    count against the next)."""
    stack = fault.stack
    for name in stack.services:
        process = stack.processes.get(name)
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGCONT)
            continue
        stack.processes.pop(name, None)
        service = "gateway" if name in fault.gateways else None
        service = "llm-worker" if name in fault.workers else service
        stack.start(name, service=service)
    await wait_all_ready(stack, timeout=90)
    await wait_drained(fault.amqp_url, Topology(fault.prefix).history_events.name, timeout=180)


@pytest.fixture
async def users(database_url: str) -> Callable[[int], Awaitable[list[UserRef]]]:
    async def make(count: int) -> list[UserRef]:
        return list(await asyncio.gather(*(create_user(database_url) for _ in range(count))))

    return make


@pytest.fixture
async def tokens(
    users: Callable[[int], Awaitable[list[UserRef]]],
) -> Callable[[int], Awaitable[list[str]]]:
    async def make(count: int) -> list[str]:
        return [token_for(user) for user in await users(count)]

    return make
