"""Making RabbitMQ drop a client's connection, as a broker restart or a network cut would."""

from __future__ import annotations

import re
import shutil
import subprocess

from chat_devtools.stack import Stack


def _rabbitmqctl(*args: str) -> str:
    return subprocess.run(
        ["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=30, check=True
    ).stdout


def close_connection_named(connection_name: str) -> bool:
    """Close the connection whose client calls itself `connection_name`; False if rabbitmqctl
    cannot reach the broker (a broker in a container, say) or no such connection exists."""
    if shutil.which("rabbitmqctl") is None:
        return False
    try:
        listing = _rabbitmqctl("list_connections", "pid", "client_properties")
    except (OSError, subprocess.SubprocessError):
        return False
    for line in listing.splitlines():
        if connection_name in line:
            _rabbitmqctl("close_connection", line.split("\t", 1)[0], "closed by a test")
            return True
    return False


def gateway_connection_name(stack: Stack, name: str = "gateway") -> str:
    """The broker connection name of the gateway process `name` (it logs its replica id)."""
    found = re.findall(r'"replica_id":\s*"([0-9a-f]+)"', stack.logs(name))
    assert found, f"{name} logs its replica id when ready"
    return f"gateway-{found[-1]}"
