"""How long a gateway takes to stop gracefully with N sockets open.

Starts a gateway and the history service as processes (real RabbitMQ and PostgreSQL, from
AMQP_URL and DATABASE_ADMIN_URL / DATABASE_URL like the tests), opens N sockets, each joined to
its own session, sends SIGTERM, and reports: how many sockets got close code 1012, the time from
SIGTERM to the first and the last close, and to the process's exit.

    uv run python -m bench.probes.gateway_stop --sockets 200 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import tempfile
import time
from pathlib import Path

import websockets

from chat_devtools.client import ChatClient
from chat_devtools.infra import (
    delete_topology,
    fresh_database,
    postgres_server_url,
    rabbitmq_url,
    unique_prefix,
)
from chat_devtools.seed import TEST_JWT_SECRET, create_user, token_for
from chat_devtools.stack import Stack


async def closed_after(client: ChatClient, start: float) -> tuple[int | None, float]:
    try:
        while True:
            await client.connection.recv()
    except websockets.ConnectionClosed as closed:
        code = closed.rcvd.code if closed.rcvd is not None else None
        return code, time.perf_counter() - start


async def one_run(stack: Stack, token: str, sockets: int) -> dict[str, float]:
    stack.start("gateway")
    stack.wait_ready(("gateway",))
    clients = [await ChatClient.connect(stack.ws_url, token) for _ in range(sockets)]
    for client in clients:
        assert (await client.join())["type"] == "joined"
    gateway = stack.processes.pop("gateway")
    start = time.perf_counter()
    gateway.send_signal(signal.SIGTERM)
    results = await asyncio.gather(*(closed_after(c, start) for c in clients))
    await asyncio.to_thread(gateway.wait)
    exited = time.perf_counter() - start
    times = sorted(t for _, t in results)
    return {
        "closed_1012": sum(1 for code, _ in results if code == 1012),
        "first_close_ms": times[0] * 1000,
        "median_close_ms": statistics.median(times) * 1000,
        "last_close_ms": times[-1] * 1000,
        "exit_ms": exited * 1000,
    }


def main(sockets: int, runs: int) -> None:
    with rabbitmq_url() as amqp, postgres_server_url() as server, fresh_database(server) as db:
        prefix = unique_prefix()
        env = {
            "APP_ENV": "test",
            "AMQP_URL": amqp,
            "DATABASE_URL": db.app_url,
            "BROKER_PREFIX": prefix,
            "JWT_SECRET": TEST_JWT_SECRET,
            "MAX_SOCKETS_PER_USER": str(sockets),
            "LOG_LEVEL": "WARNING",
        }
        stack = Stack(env=env, log_dir=Path(tempfile.mkdtemp()), services=("history",))
        stack.start_all()
        try:
            token = token_for(asyncio.run(create_user(db.admin_url)))
            for run in range(runs):
                figures = asyncio.run(one_run(stack, token, sockets))
                summary = ", ".join(f"{key} {value:.0f}" for key, value in figures.items())
                print(f"run {run + 1}: {sockets} sockets, {summary}")
        finally:
            stack.stop_all()
            asyncio.run(delete_topology(amqp, prefix))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    main(args.sockets, args.runs)
