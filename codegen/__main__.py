"""`python -m codegen` (`make generate`): regenerate the page's protocol types, the AsyncAPI
document of the broker and its rendering, from `chat_contracts`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from codegen.generate import generate
from codegen.node import NodeToolMissing
from codegen.paths import REPO


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m codegen", description=__doc__)
    parser.add_argument(
        "--root",
        type=Path,
        default=REPO,
        help="write under this folder instead of the repository (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        changed = generate(args.root)
    except NodeToolMissing as missing:
        print(f"codegen: {missing}", file=sys.stderr)
        return 2
    for path, was_changed in changed.items():
        print(f"wrote {path}" if was_changed else f"{path} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
