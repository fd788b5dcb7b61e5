"""The two systems under test, as processes: the product's five services, and the minimal relay.

Both expose the same face to the harness: start everything once, restart the front (the
gateway, or the relay server) before each further load level so its memory is measured from a
fresh process, name the processes whose CPU time counts, and hand out one access token per session.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol
from uuid import uuid4

import httpx
import psutil
from sqlalchemy.ext.asyncio import create_async_engine

from bench.hops import hop_times
from bench.relay import delete_exchange
from chat_contracts.base import UserRef
from chat_devtools.infra import Databases, delete_topology, unique_prefix
from chat_devtools.stack import Stack, free_port
from chat_gateway import identity
from chat_gateway.auth import mint_token
from chat_gateway.settings import GatewaySettings
from chat_history.store import budget

USERS_PER_ORG = 10


class System(Protocol):
    name: str

    @property
    def http_url(self) -> str: ...

    @property
    def ws_url(self) -> str: ...

    def start(self) -> None: ...

    def fresh_front(self) -> None:
        """Restart the front process unless it has served no load level yet."""

    def front_pid(self) -> int: ...

    def pids(self) -> dict[str, int]: ...

    def tokens(self, count: int) -> tuple[str | None, ...]: ...

    def stop(self) -> None: ...


def rabbitmq_pid() -> int | None:
    """The RabbitMQ server on this machine (shared with everything else that uses it)."""
    for process in psutil.process_iter(["name", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            if process.info["name"] == "beam.smp" and "rabbit" in " ".join(
                process.info["cmdline"] or ()
            ):
                return int(process.pid)
    return None


async def _seed_users(database_url: str, count: int) -> list[UserRef]:
    engine = create_async_engine(database_url)
    users: list[UserRef] = []
    try:
        async with engine.begin() as conn:
            org_id = None
            for index in range(count):
                if index % USERS_PER_ORG == 0:
                    org_id = await identity.create_org(conn, f"bench-org-{uuid4().hex[:8]}")
                    await budget.set_budget(conn, org_id, Decimal(1_000_000))
                assert org_id is not None
                users.append(
                    await identity.create_user(
                        conn, org_id, f"bench-{uuid4().hex[:10]}@example.com", f"User {index}"
                    )
                )
    finally:
        await engine.dispose()
    return users


class Ours:
    """The five services of the product, each a process, on their own prefix and database."""

    name = "ours"

    def __init__(
        self,
        amqp_url: str,
        databases: Databases,
        log_dir: Path,
        *,
        ttft_ms: float,
        rate: float,
        llm_concurrency: int,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self._amqp_url = amqp_url
        # Seeding as the owner; the services connect as their own role (row-level security).
        self._admin_url = databases.admin_url
        self._prefix = unique_prefix()
        self._secret = uuid4().hex * 2
        self._users: list[UserRef] = []
        self._front_used = False
        env = {
            "APP_ENV": "development",
            "AMQP_URL": amqp_url,
            "DATABASE_URL": databases.app_url,
            "BROKER_PREFIX": self._prefix,
            "JWT_SECRET": self._secret,
            "LLM_PROVIDER": "scripted",
            "SCRIPTED_TTFT_MS": str(ttft_ms),
            "SCRIPTED_TOKENS_PER_SECOND": str(rate),
            "LLM_CONCURRENCY": str(llm_concurrency),
            "LOG_LEVEL": "INFO",
            **(extra_env or {}),
        }
        log_dir.mkdir(parents=True, exist_ok=True)
        self.stack = Stack(env=env, log_dir=log_dir)

    @property
    def http_url(self) -> str:
        return f"{self.stack.gateway_url}/"

    @property
    def ws_url(self) -> str:
        return self.stack.ws_url

    def start(self) -> None:
        self.stack.start_all()

    def fresh_front(self) -> None:
        if self._front_used:
            self.stack.stop("gateway")
            self.stack.start("gateway")
            self.stack.wait_ready(("gateway",))
        self._front_used = True

    def front_pid(self) -> int:
        return self.stack.processes["gateway"].pid

    def pids(self) -> dict[str, int]:
        return {name: process.pid for name, process in self.stack.processes.items()}

    def hop_times(self, since: float, until: float) -> dict[str, Any]:
        """Each hop of the answers received in [since, until): bench/hops.py."""
        return hop_times(self._admin_url, since, until)

    def tokens(self, count: int) -> tuple[str | None, ...]:
        if len(self._users) < count:
            more = asyncio.run(_seed_users(self._admin_url, count - len(self._users)))
            self._users.extend(more)
        settings = GatewaySettings(jwt_secret=self._secret)
        return tuple(mint_token(user, settings, 6 * 3600) for user in self._users[:count])

    def stop(self) -> None:
        # Signal every service first, so they shut down together rather than one by one.
        for process in self.stack.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        self.stack.stop_all()
        asyncio.run(delete_topology(self._amqp_url, self._prefix))


class Relay:
    """The minimal relay (bench/relay.py): a relay server and a scripted publisher."""

    name = "relay"

    def __init__(self, amqp_url: str, log_dir: Path, *, ttft_ms: float, rate: float) -> None:
        self._amqp_url = amqp_url
        self._prefix = f"relay{uuid4().hex[:8]}"
        self._log_dir = log_dir
        self._ttft_ms = ttft_ms
        self._rate = rate
        self._port = free_port()
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._front_used = False
        log_dir.mkdir(parents=True, exist_ok=True)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self._port}/ws"

    def _spawn(self, role: str, *extra: str) -> None:
        command = [
            sys.executable,
            "-m",
            "bench.relay",
            role,
            "--amqp-url",
            self._amqp_url,
            "--prefix",
            self._prefix,
            *extra,
        ]
        with (self._log_dir / f"relay-{role}.log").open("ab") as log:
            self._processes[role] = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy()
            )

    def _wait(self, role: str, ready: str | None, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        log = self._log_dir / f"relay-{role}.log"
        while time.monotonic() < deadline:
            process = self._processes[role]
            if process.poll() is not None:
                raise RuntimeError(f"relay {role} exited:\n{log.read_text(errors='replace')}")
            if ready is not None and ready in log.read_text(errors="replace"):
                return
            if ready is None:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(self.http_url, timeout=1).status_code == 200:
                        return
            time.sleep(0.1)
        raise RuntimeError(f"relay {role} not ready after {timeout}s")

    def start(self) -> None:
        self._spawn("llm", "--ttft-ms", str(self._ttft_ms), "--rate", str(self._rate))
        self._wait("llm", "relay llm ready")
        self._spawn("server", "--port", str(self._port))
        self._wait("server", None)

    def _stop(self, role: str) -> None:
        process = self._processes.pop(role, None)
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def fresh_front(self) -> None:
        if self._front_used:
            self._stop("server")
            self._spawn("server", "--port", str(self._port))
            self._wait("server", None)
        self._front_used = True

    def front_pid(self) -> int:
        return self._processes["server"].pid

    def pids(self) -> dict[str, int]:
        return {f"relay-{role}": process.pid for role, process in self._processes.items()}

    def tokens(self, count: int) -> tuple[str | None, ...]:
        return (None,) * count

    def stop(self) -> None:
        for role in list(self._processes):
            self._stop(role)
        asyncio.run(delete_exchange(self._amqp_url, self._prefix))
