"""Summarise py-spy's collapsed stacks: where a process spends its samples.

    python -m bench.probes.profile_top PROFILE.txt [--top 25]

Prints the functions with the most samples on top of the stack ("self"), and the ones present in
the most stacks ("total"), as shares of all samples.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def _frames(stack: str) -> list[str]:
    return [
        frame.split(" (")[0] + " (" + frame.split(" (")[1].split(":")[0] + ")"
        if " (" in frame
        else frame
        for frame in stack.split(";")
    ]


def summarise(path: Path, top: int) -> str:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = _frames(stack)
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    lines = [f"{path.name}: {samples} samples", "  self:"]
    lines += [f"    {n / samples:6.1%}  {f}" for f, n in own.most_common(top)]
    lines.append("  total:")
    lines += [f"    {n / samples:6.1%}  {f}" for f, n in total.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profiles", type=Path, nargs="+")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    for path in args.profiles:
        print(summarise(path, args.top))


if __name__ == "__main__":
    main()
