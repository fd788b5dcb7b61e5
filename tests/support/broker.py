"""Making RabbitMQ drop a client's connection, as a broker restart or a network cut would."""

from __future__ import annotations

import shutil
import subprocess


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
