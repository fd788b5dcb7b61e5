"""Faults for the fault-injection suite: a RabbitMQ node of the test's own, processes paused or
killed, and readiness probes of every service.

`ChaosNode` is a second RabbitMQ node (own name, ports, data and log dirs) so that stopping the
broker mid-stream disturbs no other test on the main broker. It is started with the system's
`rabbitmq-server` (as root; its files belong to the `rabbitmq` user, which the server insists on)
and stopped with `rabbitmqctl -n`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

import httpx

from chat_devtools.stack import Stack, free_port


def rabbitmq_tools_missing() -> str | None:
    """Why a chaos node cannot be started here (None: it can)."""
    for tool in ("rabbitmq-server", "rabbitmqctl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if os.geteuid() != 0:
        return "starting a RabbitMQ node of the test's own needs root (rabbitmq-server)"
    return None


@dataclass
class ChaosNode:
    base: Path
    node: str
    port: int
    dist_port: int

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_PID_FILE": str(self.base / "pid"),
        }

    def ctl(self, *args: str, timeout: float = 60) -> str:
        result = subprocess.run(
            ["rabbitmqctl", "-n", self.node, *args],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {result.stderr or result.stdout}")
        return result.stdout

    def start(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        # The main node's config listens on 5672: this one gets a config of its own.
        (self.base / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")
        (self.base / "enabled_plugins").write_text("[].\n")
        subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", str(self.base)], check=True)
        self.base.chmod(0o755)
        subprocess.run(["rabbitmq-server", "-detached"], env=self._env(), check=True, cwd=self.base)
        # The node registers with epmd a moment after `-detached` returns; until then every
        # rabbitmqctl call fails at once.
        deadline = time.monotonic() + 90
        while True:
            try:
                self.ctl("await_startup", "--timeout", "60", timeout=70)
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        self.wait_port()

    def wait_port(self, timeout: float = 30) -> None:
        import socket

        deadline = time.monotonic() + timeout
        while True:
            with socket.socket() as sock:
                sock.settimeout(0.5)
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"chaos node {self.node} does not listen on {self.port}")
            time.sleep(0.1)

    def stop_app(self) -> None:
        """The broker goes away: every connection is closed, nothing listens on the port."""
        self.ctl("stop_app")

    def start_app(self) -> None:
        self.ctl("start_app")
        self.wait_port()

    def shutdown(self) -> None:
        try:
            self.ctl("stop", timeout=60)
        except (RuntimeError, subprocess.TimeoutExpired):
            # Not reachable by rabbitmqctl (e.g. it never finished booting): end it by its pid.
            with contextlib.suppress(OSError, ValueError):
                os.kill(int((self.base / "pid").read_text().strip()), signal.SIGKILL)
        shutil.rmtree(self.base, ignore_errors=True)


@contextmanager
def chaos_node() -> Iterator[ChaosNode]:
    base = Path(tempfile.mkdtemp(prefix="chaos-rabbitmq-"))
    node = ChaosNode(
        base=base,
        node=f"chaos-{uuid4().hex[:8]}@localhost",
        port=free_port(),
        dist_port=free_port(),
    )
    try:
        node.start()
        yield node
    finally:
        node.shutdown()


# -- processes -----------------------------------------------------------------------------


def pause(stack: Stack, name: str) -> None:
    """SIGSTOP: the process holds its connections but answers nothing (a hung service)."""
    stack.processes[name].send_signal(signal.SIGSTOP)


def resume(stack: Stack, name: str) -> None:
    stack.processes[name].send_signal(signal.SIGCONT)


def kill(stack: Stack, name: str) -> None:
    """SIGKILL: the process dies without a word (its sockets are reset by the kernel)."""
    process = stack.processes.pop(name)
    process.kill()
    process.wait()


async def readiness(stack: Stack, names: list[str] | None = None) -> dict[str, int | str]:
    """Each process's `/readyz` status (or why it did not answer)."""
    found: dict[str, int | str] = {}
    async with httpx.AsyncClient(timeout=2) as http:
        for name in names or list(stack.processes):
            try:
                response = await http.get(f"http://127.0.0.1:{stack.ports[name]}/readyz")
                found[name] = response.status_code
            except httpx.HTTPError as exc:
                found[name] = type(exc).__name__
    return found


async def wait_all_ready(stack: Stack, timeout: float = 60) -> float:
    """Seconds until every process answers `/readyz` 200 (readiness checks the consumers)."""
    started = time.monotonic()
    while True:
        status = await readiness(stack)
        if all(code == 200 for code in status.values()):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not every service is ready after {timeout}s: {status}")
        await asyncio.sleep(0.2)


async def queue_depth(amqp_url: str, queue: str) -> int:
    """Messages ready in `queue` (not counting those delivered and not yet acknowledged)."""
    import aio_pika

    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)


async def wait_drained(amqp_url: str, queue: str, timeout: float = 120) -> float:
    """Seconds until `queue` is empty (e.g. history has persisted every event it was sent)."""
    started = time.monotonic()
    while (depth := await queue_depth(amqp_url, queue)) > 0:
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{queue} still holds {depth} messages after {timeout}s")
        await asyncio.sleep(0.5)
    return time.monotonic() - started
