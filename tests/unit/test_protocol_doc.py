"""docs/protocol.md's frame tables name every frame and every field of the models, and no frame
the models do not have: the page's types are generated, the people's page is checked."""

from __future__ import annotations

import re
from typing import get_args

import pytest
from pydantic import BaseModel

from chat_contracts.codes import ErrorCode
from chat_contracts.history import HistoryMessage
from chat_contracts.protocol import AnyClientFrame, AnyServerFrame
from codegen.paths import REPO

DOC = (REPO / "docs" / "protocol.md").read_text(encoding="utf-8")


def _frames(union: object) -> dict[str, type[BaseModel]]:
    members: tuple[type[BaseModel], ...] = get_args(get_args(union)[0])
    return {get_args(model.model_fields["type"].annotation)[0]: model for model in members}


def _rows(section: str) -> dict[str, str]:
    """The rows of the table under a `## section` heading, by the frame type in their first cell."""
    body = DOC.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    table = body.split("|---", 1)[1]  # below the header row
    rows = re.findall(r"^\| `(\w+)` \|(.*)$", table, flags=re.MULTILINE)
    return dict(rows)


def _mentions(text: str, field: str) -> bool:
    # `name`, `name?`, `name[]` or `name {…}` (a nested object's fields follow in braces).
    return re.search(rf"`{field}\??(\[\])?(`| \{{)", text) is not None


@pytest.mark.parametrize(
    ("section", "union"),
    [("Client → server", AnyClientFrame), ("Server → client", AnyServerFrame)],
    ids=["client", "server"],
)
def test_every_frame_and_field_is_in_the_table(section: str, union: object) -> None:
    frames = _frames(union)
    rows = _rows(section)
    assert set(rows) == set(frames), "frames in protocol.md vs the models"
    for kind, model in frames.items():
        missing = [f for f in model.model_fields if f != "type" and not _mentions(rows[kind], f)]
        assert not missing, f"`{kind}` in protocol.md lacks {missing}"


def test_a_history_message_lists_every_field() -> None:
    sentence = DOC.split("A history message is `{", 1)[1].split("}`", 1)[0]
    listed = [name.strip() for name in sentence.replace("\n", " ").split(",")]
    assert [name.removesuffix("[]") for name in listed] == list(HistoryMessage.model_fields)


def test_every_error_code_is_explained() -> None:
    assert set(_rows("Errors")) == {code.value for code in ErrorCode}
