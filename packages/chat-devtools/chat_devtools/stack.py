"""The five services as real processes, on free ports, with their own broker prefix."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess  # nosec B404
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent
SERVICES = ("gateway", "orchestrator", "llm-worker", "tools", "history")


# Ports handed out by this test process. The kernel may offer a port again as soon as the probe
# socket is closed, before the service given it listens: two services of one stack once got the
# same port, and the second's /readyz was answered by the first.
_handed_out: set[int] = set()


def free_port() -> int:
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


@dataclass
class Stack:
    env: dict[str, str]
    log_dir: Path
    services: tuple[str, ...] = SERVICES
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ports['gateway']}/ws"

    def start(
        self, name: str, extra_env: dict[str, str] | None = None, *, service: str | None = None
    ) -> None:
        """Start `service` (by default: `name`) as the process called `name`."""
        service = service or name
        port = self.ports.setdefault(name, free_port())
        env = {**os.environ, **self.env, **(extra_env or {}), "HEALTH_PORT": str(port)}
        if service == "gateway":
            env["GATEWAY_PORT"] = str(port)
        with (self.log_dir / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(  # nosec B603
                [str(BIN / f"chat-{service}")], env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_ready(self, names: tuple[str, ...] | None = None, timeout: float = 45) -> None:
        deadline = time.monotonic() + timeout
        for name in names or tuple(self.processes):
            url = f"http://127.0.0.1:{self.ports[name]}/readyz"
            while True:
                process = self.processes[name]
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited ({process.returncode}):\n{self.logs(name)}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(url, timeout=1).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} not ready after {timeout}s:\n{self.logs(name)}")
                time.sleep(0.1)

    def start_all(self) -> None:
        for name in self.services:
            self.start(name)
        self.wait_ready()

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 20) -> int | None:
        process = self.processes.pop(name, None)
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)

    def logs(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def all_logs(self) -> str:
        return "\n".join(self.logs(name) for name in self.services)


# Starts a stack with test settings plus overrides (the `stack_factory` fixture of the tests).
StackFactory = Callable[..., Stack]
