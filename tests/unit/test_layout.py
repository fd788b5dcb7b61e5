"""The tests share helpers through support modules (`tests/support`, `tests/e2e/browser.py`,
`tests/faults/stack.py`, `chat_devtools`), never by importing a conftest or another test module:
those are pytest's to load, and a helper in one is invisible to the next reader."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
            found.extend(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
    return found


def test_no_test_imports_a_conftest_or_another_test_module() -> None:
    offending = [
        f"{path.relative_to(TESTS.parent)}: {name}"
        for path in TESTS.rglob("*.py")
        for name in _imports(path)
        if name.startswith("tests.")
        and any(part == "conftest" or part.startswith("test_") for part in name.split(".")[1:])
    ]
    assert offending == []
