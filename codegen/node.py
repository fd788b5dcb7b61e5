"""Running the Node tools the generator uses, with a plain answer when one is not installed."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Final

# Generous for two cores: json-schema-to-typescript takes about a second, the renderer a few.
TIMEOUT_SECONDS: Final = 300


class NodeToolMissing(RuntimeError):
    """A Node tool the generator needs is not installed (its `make` target installs it)."""


def run_node(
    script: Path, args: Sequence[str], *, needs: Path, install: str, stdin: str = ""
) -> str:
    """Run `node script args…` and return what it printed. `needs` is a file that exists once
    the script's packages are installed, and `install` the command that installs them."""
    node = shutil.which("node")
    if node is None:
        raise NodeToolMissing(f"`node` is not on the PATH: install Node.js, then run `{install}`")
    if not needs.is_file():
        raise NodeToolMissing(f"{needs} is missing: run `{install}` to install it")
    done = subprocess.run(  # noqa: S603 (our own script and arguments, no shell)
        [node, str(script), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{script.name} failed ({done.returncode}):\n{done.stderr.strip()}")
    return done.stdout
