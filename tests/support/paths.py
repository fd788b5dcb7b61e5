"""Where the tests leave what a person may want to look at afterwards."""

from __future__ import annotations

from pathlib import Path

# Service logs and browser screenshots of every run (git-ignored).
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
