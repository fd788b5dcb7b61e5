"""Every generated file, written under a root: the repository, or a folder to compare with it."""

from __future__ import annotations

from pathlib import Path

from codegen.paths import PROTOCOL_TS
from codegen.typescript import protocol_module


def generate(root: Path) -> list[Path]:
    """Write every generated file under `root`; the paths written, relative to it."""
    written: list[Path] = []
    _write(root, PROTOCOL_TS, protocol_module())
    written.append(PROTOCOL_TS)
    return written


def _write(root: Path, path: Path, text: str) -> None:
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
