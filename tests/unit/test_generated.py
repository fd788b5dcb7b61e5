"""The committed generated files are what `chat_contracts` generates now: the page's protocol
types, the AsyncAPI document of the broker and its rendering. A model changed without
`make generate` fails here, with the difference.

Regenerating needs the Node tools (`make web`, `make tools`; `make test` runs both first).
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from codegen.generate import generate
from codegen.node import NodeToolMissing
from codegen.paths import ASYNCAPI_MD, ASYNCAPI_YAML, PROTOCOL_TS, REPO

GENERATED = (PROTOCOL_TS, ASYNCAPI_YAML, ASYNCAPI_MD)
# Enough of a diff to see what changed, not a screen of rendered Markdown.
DIFF_LINES = 60


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path | str:
    """The folder regenerated into, or why it could not be (a test fails with that)."""
    root = tmp_path_factory.mktemp("generated")
    try:
        written = generate(root)
    except NodeToolMissing as missing:
        return f"cannot regenerate to compare with the committed files: {missing}"
    assert sorted(written) == sorted(GENERATED)
    assert all(written.values()), "a fresh folder has every file written"
    return root


def _diff(committed: str, fresh: str, path: Path) -> str:
    lines = list(
        difflib.unified_diff(
            committed.splitlines(keepends=True),
            fresh.splitlines(keepends=True),
            f"committed {path}",
            f"generated {path}",
            n=1,
        )
    )
    clipped = lines[:DIFF_LINES]
    if len(lines) > DIFF_LINES:
        clipped.append(f"... ({len(lines) - DIFF_LINES} more lines)\n")
    return "".join(clipped)


@pytest.mark.parametrize("path", GENERATED, ids=str)
def test_committed_file_is_what_the_models_generate(regenerated: Path | str, path: Path) -> None:
    if isinstance(regenerated, str):
        pytest.fail(regenerated, pytrace=False)
    committed_file = REPO / path
    committed = committed_file.read_text(encoding="utf-8") if committed_file.exists() else ""
    fresh = (regenerated / path).read_text(encoding="utf-8")
    if committed != fresh:
        pytest.fail(
            f"{path} differs from what chat_contracts generates: run `make generate` and commit "
            f"the result.\n{_diff(committed, fresh, path)}",
            pytrace=False,
        )
